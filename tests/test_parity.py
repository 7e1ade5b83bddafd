"""End-to-end parity with the official Mask2Former (``tests/fixtures/official_tiny{,_swin}``).

Builds the model from each fixture's ``config_full.yaml``, loads ``state_dict.pth`` through
detectron2's checkpointer, and compares eval-mode post-processed results and train-mode losses with
the stored official ones.
"""

import json
from pathlib import Path

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import Metadata
from detectron2.modeling import build_model
from detectron2.structures import Instances

import mask2former.modeling.backbone  # noqa: F401  (registers D2SwinTransformer)
import mask2former.modeling.heads  # noqa: F401  (registers MaskFormerHead)
import mask2former.modeling.meta_arch  # noqa: F401  (registers MaskFormer)
from tests.helpers.official_fixtures import (
    FIXTURES,
    OFFICIAL_FIXTURES,
    assert_losses_match,
    assert_matches_official,
    official_cfg,
)

FIXTURE_NAMES = list(OFFICIAL_FIXTURES)


def _load_official_model(fixture_dir: Path) -> torch.nn.Module:
    model = build_model(official_cfg(fixture_dir))
    DetectionCheckpointer(model).load(str(fixture_dir / "state_dict.pth"))
    info = json.loads((fixture_dir / "postprocess.json").read_text())
    # COCO panoptic: contiguous ids 0..79 are things (as the registered COCO metadata says).
    model.metadata = Metadata(
        name="coco_panoptic_fixture",
        thing_dataset_id_to_contiguous_id={i: i for i in info["thing_contiguous_ids"]},
    )
    return model


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def official(request):
    fixture_dir = FIXTURES / request.param
    return fixture_dir, _load_official_model(fixture_dir)


def test_raw_outputs_match(official) -> None:
    fixture_dir, model = official
    model.eval()
    inputs = torch.load(fixture_dir / "input.pth")
    raw = torch.load(fixture_dir / "raw_outputs.pth")
    with torch.no_grad():
        outputs = model.sem_seg_head(model.backbone(inputs["images_normalized_padded"]))
    predictions = [("", outputs)] + [
        (f"aux_outputs.{i}.", o) for i, o in enumerate(outputs["aux_outputs"])
    ]
    for prefix, prediction in predictions:
        for key in ("pred_logits", "pred_masks"):
            ref = raw[prefix + key]
            assert (prediction[key] - ref).abs().max() <= 1e-4 * ref.abs().max(), prefix + key


def test_eval_postprocessing_matches(official) -> None:
    fixture_dir, model = official
    model.eval()
    image = torch.load(fixture_dir / "input.pth")["image_uint8"]
    with torch.no_grad():
        [result] = model([{"image": image.float(), "height": 120, "width": 150}])
    assert_matches_official(
        fixture_dir, result["sem_seg"], result["panoptic_seg"], result["instances"]
    )


def test_train_losses_match(official) -> None:
    fixture_dir, model = official
    reference = json.loads((fixture_dir / "loss.json").read_text())
    image = torch.load(fixture_dir / "input.pth")["image_uint8"]
    gt = torch.load(fixture_dir / "loss_targets.pth")
    instances = Instances((120, 150), gt_classes=gt["labels"], gt_masks=gt["masks"])
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        losses = model([{"image": image.float(), "instances": instances}])
    model.eval()
    # No stochastic layer in the official_tiny config: seed 0 reproduces the official values.
    assert_losses_match(losses, reference, same_seed=fixture_dir.name == "official_tiny")
