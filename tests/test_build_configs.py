"""Every config file of ours builds into a model; the COCO panoptic R50 and Swin-T recipes run an
800x1088 image on the CPU."""

from pathlib import Path

import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model

from mask2former import add_maskformer2_config, add_maskformer2_video_config
from mask2former.modeling import VideoMaskFormer, VideoMultiScaleMaskedTransformerDecoder

REPO = Path(__file__).resolve().parents[1]
# Base-*.yaml files hold a dataset's and task's shared keys, not a model (merged in test_config.py).
# The video recipes (configs/youtubevis_*, quick_schedules/VIS-*) build a VideoMaskFormer.
RECIPES = sorted(p for p in (REPO / "configs").rglob("*.yaml") if not p.name.startswith("Base-"))


def _load(path: Path) -> CfgNode:
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    add_maskformer2_video_config(cfg)  # as every entry point (mask2former.config.build_config)
    cfg.merge_from_file(str(path))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    return cfg


def test_config_tree_found() -> None:
    assert len(RECIPES) >= 47 + 12  # the official image and video recipes, and ours


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_config_builds(path: Path, no_init: None) -> None:
    cfg = _load(path)
    model = build_model(cfg)
    predictor = model.sem_seg_head.predictor
    assert predictor.query_feat.weight.shape[0] == cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES
    assert predictor.class_embed.out_features == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES + 1
    # DEC_LAYERS counts the prediction from the learned queries plus the decoder layers.
    assert len(predictor.transformer_cross_attention_layers) == cfg.MODEL.MASK_FORMER.DEC_LAYERS - 1
    assert set(model.backbone.output_shape()) >= set(cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES)
    if cfg.MODEL.META_ARCHITECTURE == "VideoMaskFormer":
        assert isinstance(model, VideoMaskFormer)
        assert isinstance(predictor, VideoMultiScaleMaskedTransformerDecoder)
        assert model.num_frames == predictor.num_frames == cfg.INPUT.SAMPLING_FRAME_NUM


@pytest.mark.parametrize(
    "recipe",
    [
        "coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml",
        "coco/panoptic-segmentation/swin/maskformer2_swin_tiny_bs16_50ep.yaml",
    ],
)
def test_official_recipe_runs_800x1088(recipe: str) -> None:
    torch.manual_seed(0)
    model = build_model(_load(REPO / "configs" / recipe)).eval()
    image = torch.randint(0, 256, (3, 800, 1088), dtype=torch.uint8)
    with torch.inference_mode():
        (result,) = model([{"image": image, "height": 400, "width": 544}])
    assert result["sem_seg"].shape == (133, 400, 544)
    assert torch.isfinite(result["sem_seg"]).all()
    panoptic_seg, segments_info = result["panoptic_seg"]
    assert panoptic_seg.shape == (400, 544)
    assert {s["id"] for s in segments_info} == set(panoptic_seg.unique().tolist()) - {0}
    instances = result["instances"]
    assert instances.image_size == (400, 544)
    assert len(instances) == 100
