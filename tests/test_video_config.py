"""Tests of mask2former/video_config.py and of every YAML file under configs/youtubevis_*/: each
merges to the official values and builds a VideoMaskFormer."""

from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch
import yaml
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model

from mask2former import (
    add_maskformer2_config,
    add_maskformer2_video_config,
    validate_maskformer2_config,
)
from mask2former.modeling import VideoMaskFormer, VideoMultiScaleMaskedTransformerDecoder
from mask2former.modeling.criterion import VideoSetCriterion
from mask2former.modeling.layers import PositionEmbeddingSine3D
from tests.helpers.config_dump import OUR_IMAGE_KEYS, OUR_VIDEO_KEYS, flatten, get_key

REPO = Path(__file__).resolve().parents[1]
VIDEO_FIXTURE = Path(__file__).parent / "fixtures" / "official_tiny_video"
VIDEO_FOLDERS = ("youtubevis_2019", "youtubevis_2021")
# Every video config file: 2 Base files and 12 recipes. The build test of the video model
# ("every video YAML builds", test_every_video_config_builds) iterates over VIDEO_RECIPES too.
VIDEO_CONFIGS: List[Path] = sorted(
    p for folder in VIDEO_FOLDERS for p in (REPO / "configs" / folder).rglob("*.yaml")
)
VIDEO_RECIPES: List[Path] = [p for p in VIDEO_CONFIGS if not p.name.startswith("Base-")]
R50_2019 = REPO / "configs" / "youtubevis_2019" / "video_maskformer2_R50_bs16_8ep.yaml"
# Keys we add on top of the official ones (image and video).
OUR_KEYS = OUR_IMAGE_KEYS | OUR_VIDEO_KEYS

# The official add_maskformer2_video_config (mask2former_video/config.py), copied by hand.
OFFICIAL_VIDEO_DEFAULTS: Dict[str, Any] = {
    "INPUT.SAMPLING_FRAME_NUM": 2,
    "INPUT.SAMPLING_FRAME_RANGE": 20,
    "INPUT.SAMPLING_FRAME_SHUFFLE": False,
    "INPUT.AUGMENTATIONS": [],
}

# Shared by every official video recipe after merging (from the official YAML files).
COMMON_VIDEO_EXPECTATIONS: Dict[str, Any] = {
    "MODEL.META_ARCHITECTURE": "VideoMaskFormer",
    "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "VideoMultiScaleMaskedTransformerDecoder",
    "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": "multi_scale_pixel_decoder",
    "MODEL.SEM_SEG_HEAD.NAME": "MaskFormerHead",
    "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 40,
    "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "MSDeformAttnPixelDecoder",
    "MODEL.SEM_SEG_HEAD.NORM": "GN",
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 6,
    "MODEL.SEM_SEG_HEAD.IN_FEATURES": ["res2", "res3", "res4", "res5"],
    "MODEL.MASK_FORMER.DEC_LAYERS": 10,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
    "MODEL.MASK_FORMER.DROPOUT": 0.0,
    "MODEL.MASK_FORMER.CLASS_WEIGHT": 2.0,
    "MODEL.MASK_FORMER.MASK_WEIGHT": 5.0,
    "MODEL.MASK_FORMER.DICE_WEIGHT": 5.0,
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 12544,
    "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": False,
    "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
    "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False,
    "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.8,
    "MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD": 0.8,
    "MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE": False,
    "MODEL.MASK_ON": True,
    "MODEL.BACKBONE.FREEZE_AT": 0,
    "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
    "MODEL.PIXEL_STD": [58.395, 57.12, 57.375],
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
    "SOLVER.IMS_PER_BATCH": 16,
    "SOLVER.BASE_LR": 0.0001,
    "SOLVER.OPTIMIZER": "ADAMW",
    "SOLVER.WEIGHT_DECAY": 0.05,
    "SOLVER.WARMUP_ITERS": 10,
    "SOLVER.WARMUP_FACTOR": 1.0,
    "SOLVER.LR_SCHEDULER_NAME": "WarmupMultiStepLR",
    "SOLVER.BACKBONE_MULTIPLIER": 0.1,
    "SOLVER.CLIP_GRADIENTS.ENABLED": True,
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "full_model",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 0.01,
    "SOLVER.AMP.ENABLED": True,
    "INPUT.SAMPLING_FRAME_NUM": 2,
    "INPUT.SAMPLING_FRAME_RANGE": 20,
    "INPUT.SAMPLING_FRAME_SHUFFLE": False,
    "INPUT.AUGMENTATIONS": [],
    "INPUT.MIN_SIZE_TRAIN_SAMPLING": "choice_by_clip",
    "INPUT.RANDOM_FLIP": "flip_by_clip",
    "INPUT.MIN_SIZE_TRAIN": [360, 480],
    "INPUT.MAX_SIZE_TRAIN": 1333,
    "INPUT.MAX_SIZE_TEST": 1333,
    "INPUT.CROP.ENABLED": False,
    "INPUT.CROP.TYPE": "absolute_range",
    "INPUT.CROP.SIZE": [600, 720],
    "INPUT.FORMAT": "RGB",
    # The official video recipes leave the image default; the video trainer picks the mapper.
    "INPUT.DATASET_MAPPER_NAME": "mask_former_semantic",
    "DATALOADER.FILTER_EMPTY_ANNOTATIONS": False,
    "DATALOADER.NUM_WORKERS": 4,
    "TEST.EVAL_PERIOD": 0,
}

_SWIN = {
    "tiny": dict(EMBED_DIM=96, DEPTHS=[2, 2, 6, 2], NUM_HEADS=[3, 6, 12, 24], WINDOW_SIZE=7),
    "small": dict(EMBED_DIM=96, DEPTHS=[2, 2, 18, 2], NUM_HEADS=[3, 6, 12, 24], WINDOW_SIZE=7),
    "base": dict(EMBED_DIM=128, DEPTHS=[2, 2, 18, 2], NUM_HEADS=[4, 8, 16, 32], WINDOW_SIZE=12),
    "large": dict(EMBED_DIM=192, DEPTHS=[2, 2, 18, 2], NUM_HEADS=[6, 12, 24, 48], WINDOW_SIZE=12),
}
# Per recipe: (backbone, weights, queries, MIN_SIZE_TEST), from the official recipes table.
_RECIPES = {
    "video_maskformer2_R50_bs16_8ep.yaml": ("R50", "model_final_3c8ec9.pkl", 100, 360),
    "video_maskformer2_R101_bs16_8ep.yaml": ("R101", "model_final_eba159.pkl", 100, 360),
    "swin/video_maskformer2_swin_tiny_bs16_8ep.yaml": ("tiny", "model_final_86143f.pkl", 100, 480),
    "swin/video_maskformer2_swin_small_bs16_8ep.yaml": (
        "small",
        "model_final_1e7f22.pkl",
        100,
        480,
    ),
    "swin/video_maskformer2_swin_base_IN21k_384_bs16_8ep.yaml": (
        "base",
        "model_final_83d103.pkl",
        100,
        480,
    ),
    "swin/video_maskformer2_swin_large_IN21k_384_bs16_8ep.yaml": (
        "large",
        "model_final_e5f453.pkl",
        200,
        480,
    ),
}
_SCHEDULES = {"2019": (6000, [4000]), "2021": (8000, [5500])}


def _expectations(folder: str, recipe: str) -> Dict[str, Any]:
    year = folder.split("_")[1]
    backbone, weights, queries, min_size_test = _RECIPES[recipe]
    if year == "2021" and backbone == "large":
        min_size_test = 360  # the official 2021 Swin-L keeps 360 (larger runs out of memory)
    max_iter, steps = _SCHEDULES[year]
    expected = dict(COMMON_VIDEO_EXPECTATIONS)
    expected.update(
        {
            "DATASETS.TRAIN": [f"ytvis_{year}_train"],
            "DATASETS.TEST": [f"ytvis_{year}_val"],
            "SOLVER.MAX_ITER": max_iter,
            "SOLVER.STEPS": steps,
            "MODEL.WEIGHTS": weights,
            "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": queries,
            "INPUT.MIN_SIZE_TEST": min_size_test,
        }
    )
    if backbone.startswith("R"):
        expected["MODEL.BACKBONE.NAME"] = "build_resnet_backbone"
        expected["MODEL.RESNETS.DEPTH"] = int(backbone[1:])
        expected["MODEL.RESNETS.NORM"] = "FrozenBN"
    else:
        expected["MODEL.BACKBONE.NAME"] = "D2SwinTransformer"
        expected.update({f"MODEL.SWIN.{k}": v for k, v in _SWIN[backbone].items()})
        expected["MODEL.SWIN.PRETRAIN_IMG_SIZE"] = 384 if backbone in ("base", "large") else 224
        expected["MODEL.SWIN.DROP_PATH_RATE"] = 0.3
    return expected


RECIPE_EXPECTATIONS: Dict[str, Dict[str, Any]] = {
    f"{folder}/{recipe}": _expectations(folder, recipe)
    for folder in VIDEO_FOLDERS
    for recipe in _RECIPES
}


def load_video_config(*paths: Path) -> CfgNode:
    """A config with the image and video keys, ``paths`` merged in order."""
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    add_maskformer2_video_config(cfg)
    for path in paths:
        cfg.merge_from_file(str(path))
    return cfg


def test_official_video_defaults() -> None:
    cfg = load_video_config()
    for key, value in OFFICIAL_VIDEO_DEFAULTS.items():
        assert get_key(cfg, key) == value, key
    assert cfg.MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE is False
    assert cfg.MODEL.MASK_FORMER.TEST.WINDOW_SIZE == 30


def test_video_config_alone_adds_image_keys_and_is_idempotent() -> None:
    alone = get_cfg()
    add_maskformer2_video_config(alone)
    assert alone.dump() == load_video_config().dump()
    alone.INPUT.SAMPLING_FRAME_NUM = 5
    alone.MODEL.MASK_FORMER.DEC_LAYERS = 3
    add_maskformer2_video_config(alone)
    add_maskformer2_config(alone)
    assert alone.INPUT.SAMPLING_FRAME_NUM == 5
    assert alone.MODEL.MASK_FORMER.DEC_LAYERS == 3


def test_official_video_dump_merges_unchanged() -> None:
    """The official code's full video config merges, and we define exactly its keys plus ours."""
    path = VIDEO_FIXTURE / "config_full.yaml"
    cfg = load_video_config(path)
    expected = flatten(yaml.safe_load(path.read_text()))
    merged = flatten(yaml.safe_load(cfg.dump()))
    assert {k: merged[k] for k in expected} == expected
    assert set(merged) - set(expected) == OUR_KEYS
    validate_maskformer2_config(cfg)


def test_our_recipe_reproduces_official_video_dump() -> None:
    """Our 2019 R50 recipe + the fixture's overrides resolve to the official full config."""
    overrides = VIDEO_FIXTURE / "config_overrides.yaml"
    base = overrides.read_text().splitlines()[0].split("base config ")[1].strip()
    assert base == "configs/youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml"
    cfg = load_video_config(REPO / base, overrides)
    expected = flatten(yaml.safe_load((VIDEO_FIXTURE / "config_full.yaml").read_text()))
    merged = flatten(yaml.safe_load(cfg.dump()))
    assert {k: v for k, v in merged.items() if k not in OUR_KEYS} == expected


def test_video_config_tree_is_complete() -> None:
    # The official release's 14 video config files: 6 recipes and a Base file per year.
    assert len(VIDEO_CONFIGS) == 14 and len(VIDEO_RECIPES) == 12
    for folder in VIDEO_FOLDERS:
        root = REPO / "configs" / folder
        assert (root / "Base-YouTubeVIS-VideoInstanceSegmentation.yaml").is_file()
        assert {str(p.relative_to(root)) for p in root.rglob("*.yaml")} - {
            "Base-YouTubeVIS-VideoInstanceSegmentation.yaml"
        } == set(_RECIPES)


def test_video_recipes_need_the_video_keys() -> None:
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    with pytest.raises(KeyError, match="AUGMENTATIONS"):
        cfg.merge_from_file(str(VIDEO_RECIPES[0]))


@pytest.mark.parametrize("path", VIDEO_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_video_config_merges(path: Path) -> None:
    cfg = load_video_config(path)
    if path in VIDEO_RECIPES:  # Base files leave the model keys at their defaults
        validate_maskformer2_config(cfg)
        for key, value in COMMON_VIDEO_EXPECTATIONS.items():
            assert get_key(cfg, key) == value, key


@pytest.mark.parametrize("name", sorted(RECIPE_EXPECTATIONS))
def test_video_recipe_values(name: str) -> None:
    cfg = load_video_config(REPO / "configs" / name)
    for key, value in RECIPE_EXPECTATIONS[name].items():
        assert get_key(cfg, key) == value, key


@pytest.mark.parametrize(
    "key, value",
    [
        ("INPUT.SAMPLING_FRAME_NUM", 0),
        ("INPUT.SAMPLING_FRAME_RANGE", -1),
        ("INPUT.AUGMENTATIONS", ["brightness", "blur"]),
        ("INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice_by_video"),
        ("INPUT.RANDOM_FLIP", "flip_by_video"),
        ("MODEL.MASK_FORMER.TEST.WINDOW_SIZE", 0),
        ("MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE", "res5"),
    ],
)
def test_validate_rejects_bad_video_value(key: str, value: Any) -> None:
    cfg = load_video_config(
        REPO / "configs" / "youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml"
    )
    cfg.merge_from_list([key, value])
    with pytest.raises(ValueError, match=key.split(".")[-1]):
        validate_maskformer2_config(cfg)


def test_validate_rejects_range_sampling_without_two_sizes() -> None:
    cfg = load_video_config(
        REPO / "configs" / "youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml"
    )
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "range_by_clip"
    cfg.INPUT.MIN_SIZE_TRAIN = (320, 360, 400)
    with pytest.raises(ValueError, match="MIN_SIZE_TRAIN"):
        validate_maskformer2_config(cfg)
    cfg.INPUT.MIN_SIZE_TRAIN = (320, 400)
    validate_maskformer2_config(cfg)


@pytest.mark.parametrize("path", VIDEO_RECIPES, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_video_config_builds(path: Path, no_init: None) -> None:
    cfg = load_video_config(path)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    model = build_model(cfg)
    assert isinstance(model, VideoMaskFormer)
    predictor = model.sem_seg_head.predictor
    assert isinstance(predictor, VideoMultiScaleMaskedTransformerDecoder)
    assert isinstance(predictor.pe_layer, PositionEmbeddingSine3D)
    assert predictor.query_feat.weight.shape[0] == cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES
    assert predictor.class_embed.out_features == 41  # 40 YouTube-VIS classes + no object
    assert len(predictor.transformer_cross_attention_layers) == 9
    # The official files name no criterion: the video one, with the official weights.
    assert isinstance(model.criterion, VideoSetCriterion)
    assert len(model.criterion.weight_dict) == 3 * 10
    assert model.criterion.weight_dict["loss_dice_8"] == 5.0
    assert model.num_frames == predictor.num_frames == 2
    assert (model.window_inference, model.window_size) == (False, 30)
    assert model.size_divisibility == 32


@pytest.mark.slow
def test_official_r50_recipe_runs_a_360x640_clip() -> None:
    """The YouTube-VIS 2019 R50 recipe on a 2-frame 360x640 clip (padded to 384x640): the official
    result dict, the same predictions from the windowed inference (one frame per window)."""
    torch.manual_seed(0)
    cfg = load_video_config(R50_2019)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    model = build_model(cfg).eval()
    frames = list(torch.randint(0, 256, (2, 3, 360, 640), dtype=torch.uint8))
    video = {"image": frames, "height": 180, "width": 320}
    with torch.inference_mode():
        whole = model([video])
        model.window_inference, model.window_size = True, 1
        windowed = model([video])
    assert tuple(whole["image_size"]) == (180, 320)
    assert len(whole["pred_scores"]) == len(whole["pred_labels"]) == len(whole["pred_masks"]) == 10
    assert whole["pred_scores"] == sorted(whole["pred_scores"], reverse=True)
    assert all(0 <= label < 40 for label in whole["pred_labels"])
    assert all(m.shape == (2, 180, 320) and m.dtype == torch.bool for m in whole["pred_masks"])
    assert windowed["pred_labels"] == whole["pred_labels"]
    torch.testing.assert_close(
        torch.tensor(windowed["pred_scores"]), torch.tensor(whole["pred_scores"]), rtol=1e-5, atol=0
    )
    differ = torch.stack(windowed["pred_masks"]) != torch.stack(whole["pred_masks"])
    assert differ.float().mean() < 1e-4
