"""ONNX export through tools/export_model.py, run by ONNX Runtime: standard ops only, dynamic
sizes, logits equal to the model's own head outputs on real photos at two sizes, and the same
panoptic segments through mask2former_onnx (numpy) as through the model's own inference."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from export_samples import CONFIGS, REPO, photo, randomized_model, tiny_cfg

onnx = pytest.importorskip("onnx", reason="the onnx extra (pip install -e .[onnx])")
pytest.importorskip("onnxruntime", reason="the onnx extra (pip install -e .[onnx])")

from mask2former.export import ExportableMaskFormer  # noqa: E402
from mask2former_onnx import OnnxPredictor  # noqa: E402

sys.path.insert(0, str(REPO / "tools"))
import export_model  # noqa: E402

sys.path.remove(str(REPO / "tools"))

# Panoptic thresholds of the fixture config: every confident query is a candidate segment.
OPTS = ["MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD", "0.0"]
SIZES = (256, 416)  # INPUT.MIN_SIZE_TEST values the photos are resized to


@pytest.fixture(scope="module")
def exported(tmp_path_factory, checkpoint_factory):
    """(onnx path, our model, cfg) for the tiny R50 model."""
    weights = checkpoint_factory("r50")
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_model.main(
        [
            "--config-file",
            str(CONFIGS["r50"]),
            "--format",
            "onnx",
            "--output",
            str(path),
            "--size",
            "256",
            "320",
            "MODEL.WEIGHTS",
            str(weights),
            *OPTS,
        ]
    )
    cfg = tiny_cfg("r50", "MODEL.WEIGHTS", str(weights), *OPTS)
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(weights))
    return path, model, cfg


def test_graph_has_one_dynamic_input_two_outputs_and_standard_ops(exported) -> None:
    path, _, _ = exported
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["pred_logits", "pred_masks"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 1 and dims[1].dim_value == 3
    assert dims[2].dim_param and dims[3].dim_param  # symbolic H and W
    domains = {node.domain for node in graph.node}
    assert domains <= {"", "ai.onnx"}, domains  # no custom op
    ops = {node.op_type for node in graph.node}
    assert "GridSample" in ops  # the deformable attention


def _rescaled_input(model, image_rgb: np.ndarray, short: int) -> dict:
    aug = T.ResizeShortestEdge([short, short], 640)
    resized = aug.get_transform(image_rgb).apply_image(image_rgb)
    return {
        "image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))),
        "height": image_rgb.shape[0],
        "width": image_rgb.shape[1],
    }


@pytest.mark.parametrize("short", SIZES)
def test_onnx_runtime_matches_the_model_on_real_photos(exported, short: int) -> None:
    path, model, cfg = exported
    predictor = OnnxPredictor(str(path), num_threads=2)
    predictor.metadata["min_size_test"], predictor.metadata["max_size_test"] = short, 640
    wrapper = ExportableMaskFormer(model, cfg.INPUT.FORMAT).eval()
    for index in range(2):
        image = photo(index)
        # The network: logits within 1e-3 of the largest value.
        padded, _ = predictor.preprocess(image)
        logits, masks = predictor.run(padded)
        ref_logits, ref_masks = wrapper.reference_outputs(model, torch.from_numpy(padded))
        for got, ref in ((logits, ref_logits), (masks, ref_masks)):
            assert got.shape == tuple(ref.shape)
            assert np.abs(got - ref.numpy()).max() <= 1e-3 * float(ref.abs().max())
        # The whole pipeline: the same panoptic segments as the model's own inference.
        with torch.no_grad():
            (expected,) = model([_rescaled_input(model, image, short)])
        result = predictor(image, tasks=("panoptic", "semantic", "instance"))
        ids, segments = result["panoptic_seg"]
        ref_ids, ref_segments = expected["panoptic_seg"]
        assert segments == ref_segments and len(segments) >= 1
        assert (ids != ref_ids.numpy()).mean() < 1e-3
        sem_ref = expected["sem_seg"].numpy()
        assert np.abs(result["sem_seg"] - sem_ref).max() <= 1e-3 * np.abs(sem_ref).max()
        np.testing.assert_allclose(
            np.sort(result["instances"]["scores"]),
            np.sort(expected["instances"].scores.numpy()),
            atol=1e-4,
        )


def test_export_rejects_sizes_that_are_not_multiples_of_32(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        export_model.main(
            [
                "--config-file",
                str(CONFIGS["r50"]),
                "--output",
                str(tmp_path / "m.onnx"),
                "--size",
                "250",
                "320",
            ]
        )


def test_torchscript_trace_of_a_resnet_model_works_at_other_sizes(exported, tmp_path) -> None:
    _, model, cfg = exported
    path = tmp_path / "model.ts"
    export_model.main(
        [
            "--config-file",
            str(CONFIGS["r50"]),
            "--format",
            "torchscript",
            "--output",
            str(path),
            "--size",
            "256",
            "320",
            "MODEL.WEIGHTS",
            cfg.MODEL.WEIGHTS,
        ]
    )
    traced = torch.jit.load(str(path))
    wrapper = ExportableMaskFormer(model, cfg.INPUT.FORMAT).eval()
    for size in ((256, 320), (320, 256)):
        x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) * 255
        with torch.no_grad():
            got = traced(x)
        for g, r in zip(got, wrapper.reference_outputs(model, x)):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_swin_model_exports_with_dynamic_sizes(tmp_path: Path) -> None:
    """Swin's window padding and shifted-window masks stay symbolic in the graph: one export
    serves sizes whose windows pad differently (the slowest export here, a few minutes)."""
    import onnxruntime

    from mask2former.export import export_onnx

    cfg = tiny_cfg("swin")
    model = randomized_model(cfg)
    wrapper = ExportableMaskFormer(model, cfg.INPUT.FORMAT).eval()
    path = tmp_path / "swin.onnx"
    export_onnx(wrapper, str(path), example_size=(256, 320))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in ((288, 352), (320, 256)):
        x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) * 255
        got = session.run(None, {"image": x.numpy()})
        for g, r in zip(got, wrapper.reference_outputs(model, x)):
            assert g.shape == tuple(r.shape)
            assert np.abs(g - r.numpy()).max() <= 1e-3 * float(r.abs().max())
