"""The official-implementation fixtures in ``tests/fixtures/official_tiny{,_swin,_video}``: their
configs and the comparison of post-processed results with the official ones."""

import json
from pathlib import Path
from typing import Dict

import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.structures import BitMasks, Instances

from mask2former.config import add_maskformer2_config
from mask2former.video_config import add_maskformer2_video_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OFFICIAL_FIXTURES = ("official_tiny", "official_tiny_swin")
VIDEO_FIXTURE = FIXTURES / "official_tiny_video"


def official_cfg(fixture_dir: Path) -> CfgNode:
    """The fixture's full official config (``config_full.yaml``) merged on our defaults."""
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    cfg.merge_from_file(str(fixture_dir / "config_full.yaml"))
    return cfg


def official_video_cfg() -> CfgNode:
    """The video fixture's full official config merged on our defaults with the video keys."""
    cfg = get_cfg()
    add_maskformer2_video_config(cfg)
    cfg.merge_from_file(str(VIDEO_FIXTURE / "config_full.yaml"))
    return cfg


def assert_matches_official(
    fixture_dir: Path, sem_seg: torch.Tensor, panoptic, instances: Instances
) -> None:
    """Compare post-processed results with ``postprocess.pth/json`` within the README tolerances.

    Args:
        fixture_dir: the fixture folder.
        sem_seg: [K, H, W] semantic scores; panoptic: (segment ids [H, W] int32, segments_info);
        instances: the instance results.
    """
    ref = torch.load(fixture_dir / "postprocess.pth")
    info = json.loads((fixture_dir / "postprocess.json").read_text())

    assert sem_seg.shape == tuple(info["sem_seg_shape"])
    strided = sem_seg[:, :: info["sem_seg_stride"], :: info["sem_seg_stride"]]
    scale = ref["sem_seg_strided"].abs().max()
    assert (strided - ref["sem_seg_strided"]).abs().max() <= 1e-5 * scale
    assert (sem_seg.argmax(0) != ref["sem_seg_argmax"].long()).sum() <= 5
    torch.testing.assert_close(
        sem_seg.double().sum((1, 2)), ref["sem_seg_class_sum"], rtol=1e-5, atol=1e-3
    )

    panoptic_seg, segments_info = panoptic
    assert panoptic_seg.dtype == torch.int32
    assert segments_info == info["segments_info"]
    assert (panoptic_seg != ref["panoptic_seg"]).sum() <= 5

    assert len(instances) == info["num_instances"]
    order = instances.scores.argsort(descending=True)
    ref_order = ref["instances_scores"].argsort(descending=True)
    assert torch.equal(instances.pred_classes[order], ref["instances_pred_classes"][ref_order])
    torch.testing.assert_close(
        instances.scores[order], ref["instances_scores"][ref_order], rtol=0, atol=1e-4
    )
    masks = instances.pred_masks[order].bool()
    assert (masks != ref["instances_pred_masks"][ref_order]).sum() <= 50
    # Real boxes: tight around each mask.
    torch.testing.assert_close(
        instances.pred_boxes.tensor,
        BitMasks(instances.pred_masks.bool()).get_bounding_boxes().tensor,
    )


def assert_losses_match(
    losses: Dict[str, torch.Tensor], reference: Dict, same_seed: bool = False
) -> None:
    """Each loss (and the total) within mean +- 3 std of the official ``loss.json``; with
    ``same_seed``, also equal to the official seed-0 value (same random draws in the same order).
    """
    assert set(losses) == set(reference["seed0"])
    for key, value in losses.items():
        mean, std = reference["mean"][key], reference["std"][key]
        assert abs(value.item() - mean) <= 3 * std + 1e-5 * abs(mean), (key, value.item(), mean)
    total = sum(v.item() for v in losses.values())
    assert abs(total - reference["total_mean"]) <= 3 * reference["total_std"] + 1e-4
    if same_seed:
        for key, value in losses.items():
            assert value.item() == pytest.approx(reference["seed0"][key], rel=1e-5), key
