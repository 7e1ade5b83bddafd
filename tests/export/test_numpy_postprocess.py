"""mask2former_onnx.postprocess (numpy) gives the results of mask2former/modeling/postprocessing.py
on the official fixture's logits, and imports with torch unavailable."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from export_samples import REPO
from torch.nn import functional as F

from mask2former.modeling import postprocessing as torch_pp
from mask2former_onnx import postprocessing as np_pp

FIXTURES = REPO / "tests/fixtures"


def test_imports_and_runs_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, mask2former_onnx\n"
        "from mask2former_onnx.postprocessing import postprocess\n"
        "r = postprocess(np.zeros((4, 3), 'f4'), np.zeros((4, 8, 8), 'f4'), padded_size=(32, 32),"
        " image_size=(30, 28), output_size=(60, 56), tasks=('semantic', 'panoptic', 'instance'))\n"
        "assert r['sem_seg'].shape == (2, 60, 56)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.fixture(scope="module", params=["official_tiny", "official_tiny_swin"])
def logits(request):
    raw = torch.load(FIXTURES / request.param / "raw_outputs.pth")
    info = json.loads((FIXTURES / request.param / "postprocess.json").read_text())
    return raw["pred_logits"][0], raw["pred_masks"][0], info


@pytest.mark.parametrize("size", [(128, 160), (97, 203)])
def test_resize_bilinear_matches_interpolate(logits, size) -> None:
    _, masks, _ = logits
    ref = F.interpolate(masks[None], size=size, mode="bilinear", align_corners=False)[0]
    got = np_pp.resize_bilinear(masks.numpy(), size)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=5e-5)  # float32 rounding


def _at_output_size(masks: torch.Tensor) -> torch.Tensor:
    from detectron2.modeling.postprocessing import sem_seg_postprocess

    up = F.interpolate(masks[None], size=(128, 160), mode="bilinear", align_corners=False)[0]
    return sem_seg_postprocess(up, (120, 150), 120, 150)


def test_semantic_panoptic_instance_match_the_torch_rules(logits) -> None:
    mask_cls, masks, info = logits
    mask_pred = _at_output_size(masks)
    k = mask_cls.shape[-1] - 1
    sem = np_pp.semantic_inference(mask_cls.numpy(), mask_pred.numpy())
    ref_sem = torch_pp.semantic_inference(mask_cls, mask_pred).numpy()
    np.testing.assert_allclose(sem, ref_sem, rtol=1e-5, atol=1e-5)

    kwargs = dict(
        num_classes=k,
        object_mask_threshold=info["object_mask_threshold"],
        overlap_threshold=info["overlap_threshold"],
        thing_ids=info["thing_contiguous_ids"],
    )
    ids, segments = np_pp.panoptic_inference(mask_cls.numpy(), mask_pred.numpy(), **kwargs)
    ref_ids, ref_segments = torch_pp.panoptic_inference(mask_cls, mask_pred, **kwargs)
    assert segments == ref_segments and len(segments) >= 1
    assert ids.dtype == np.int32 and (ids != ref_ids.numpy()).sum() <= 5

    for panoptic_on in (True, False):
        kwargs = dict(
            num_classes=k,
            test_topk_per_image=100,
            thing_ids=info["thing_contiguous_ids"],
            panoptic_on=panoptic_on,
        )
        got = np_pp.instance_inference(mask_cls.numpy(), mask_pred.numpy(), **kwargs)
        ref = torch_pp.instance_inference(mask_cls, mask_pred, **kwargs)
        order = np.argsort(-got["scores"], kind="stable")
        ref_order = ref.scores.argsort(descending=True).numpy()
        assert len(order) == len(ref)
        np.testing.assert_allclose(got["scores"][order], ref.scores.numpy()[ref_order], atol=1e-5)
        np.testing.assert_array_equal(
            got["pred_classes"][order][:-2], ref.pred_classes.numpy()[ref_order][:-2]
        )  # the last two may swap: the fixture's top-k boundary is within 5e-5
        np.testing.assert_array_equal(got["pred_boxes"], np_pp.masks_to_boxes(got["pred_masks"]))
        boxes = torch_pp.masks_to_boxes(torch.from_numpy(got["pred_masks"])).numpy()
        np.testing.assert_array_equal(got["pred_boxes"], boxes)


def test_semantic_only_resizes_after_inference_like_the_model(logits) -> None:
    mask_cls, masks, _ = logits
    up = F.interpolate(masks[None], size=(128, 160), mode="bilinear", align_corners=False)[0]
    from detectron2.modeling.postprocessing import sem_seg_postprocess

    ref = sem_seg_postprocess(torch_pp.semantic_inference(mask_cls, up), (120, 150), 240, 300)
    got = np_pp.postprocess(
        mask_cls.numpy(),
        masks.numpy(),
        padded_size=(128, 160),
        image_size=(120, 150),
        output_size=(240, 300),
        tasks=("semantic",),
        sem_seg_postprocess_before_inference=False,
    )
    np.testing.assert_allclose(got["sem_seg"], ref.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="semantic alone"):
        np_pp.postprocess(
            mask_cls.numpy(),
            masks.numpy(),
            padded_size=(128, 160),
            image_size=(120, 150),
            output_size=(120, 150),
            tasks=("panoptic",),
            sem_seg_postprocess_before_inference=False,
        )
