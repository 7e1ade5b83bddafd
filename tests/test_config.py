"""Tests of mask2former/config.py, config_validation.py and of every YAML file under configs/."""

import ast
import logging
from pathlib import Path
from typing import Any, Dict, Set

import pytest
import yaml
from detectron2.config import CfgNode, get_cfg
from detectron2.projects.deeplab import add_deeplab_config

import mask2former.config_validation as validation_module
from mask2former.config import (
    COMPATIBILITY_ONLY_KEYS,
    add_maskformer2_config,
    validate_maskformer2_config,
)
from mask2former.video_config import add_maskformer2_video_config
from tests.helpers.config_dump import OUR_IMAGE_KEYS, flatten, get_key

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
OFFICIAL_FIXTURES = ("official_tiny", "official_tiny_swin")
# The official video config folders (their recipe values: tests/test_video_config.py).
VIDEO_FOLDERS = ("youtubevis_2019", "youtubevis_2021")
# Every config file of the project, image and video (the model-building test iterates over this
# list too).
ALL_CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
# Our own (non-official) config folders: instant tests and the quick start.
OWN_FOLDERS = {"quick_schedules", "quickstart"}
RECIPES = [p for p in ALL_CONFIGS if not p.name.startswith("Base-")]
# The official image recipes, each checked against COMMON_EXPECTATIONS.
OFFICIAL_IMAGE_RECIPES = [
    p
    for p in RECIPES
    if p.parent.name not in OWN_FOLDERS
    and p.relative_to(REPO / "configs").parts[0] not in VIDEO_FOLDERS
]
# Keys we add on top of the official ones.
OUR_KEYS = OUR_IMAGE_KEYS

# Defaults of the official add_maskformer2_config (facebookresearch/Mask2Former), copied by hand.
OFFICIAL_DEFAULTS: Dict[str, Any] = {
    "INPUT.DATASET_MAPPER_NAME": "mask_former_semantic",
    "INPUT.COLOR_AUG_SSD": False,
    "INPUT.CROP.SINGLE_CATEGORY_MAX_AREA": 1.0,
    "INPUT.SIZE_DIVISIBILITY": -1,
    "INPUT.IMAGE_SIZE": 1024,
    "INPUT.MIN_SCALE": 0.1,
    "INPUT.MAX_SCALE": 2.0,
    "SOLVER.WEIGHT_DECAY_EMBED": 0.0,
    "SOLVER.OPTIMIZER": "ADAMW",
    "SOLVER.BACKBONE_MULTIPLIER": 0.1,
    "MODEL.MASK_FORMER.DEEP_SUPERVISION": True,
    "MODEL.MASK_FORMER.NO_OBJECT_WEIGHT": 0.1,
    "MODEL.MASK_FORMER.CLASS_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.DICE_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.MASK_WEIGHT": 20.0,
    "MODEL.MASK_FORMER.NHEADS": 8,
    "MODEL.MASK_FORMER.DROPOUT": 0.1,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 2048,
    "MODEL.MASK_FORMER.ENC_LAYERS": 0,
    "MODEL.MASK_FORMER.DEC_LAYERS": 6,
    "MODEL.MASK_FORMER.PRE_NORM": False,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 100,
    "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": "res5",
    "MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ": False,
    "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
    "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False,
    "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False,
    "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.0,
    "MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD": 0.0,
    "MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE": False,
    "MODEL.MASK_FORMER.SIZE_DIVISIBILITY": 32,
    "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "MultiScaleMaskedTransformerDecoder",
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 12544,
    "MODEL.MASK_FORMER.OVERSAMPLE_RATIO": 3.0,
    "MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO": 0.75,
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 256,
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 0,
    "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "BasePixelDecoder",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES": ["res3", "res4", "res5"],
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS": 4,
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS": 8,
    "MODEL.SWIN.PRETRAIN_IMG_SIZE": 224,
    "MODEL.SWIN.PATCH_SIZE": 4,
    "MODEL.SWIN.EMBED_DIM": 96,
    "MODEL.SWIN.DEPTHS": [2, 2, 6, 2],
    "MODEL.SWIN.NUM_HEADS": [3, 6, 12, 24],
    "MODEL.SWIN.WINDOW_SIZE": 7,
    "MODEL.SWIN.MLP_RATIO": 4.0,
    "MODEL.SWIN.QKV_BIAS": True,
    "MODEL.SWIN.QK_SCALE": None,
    "MODEL.SWIN.DROP_RATE": 0.0,
    "MODEL.SWIN.ATTN_DROP_RATE": 0.0,
    "MODEL.SWIN.DROP_PATH_RATE": 0.3,
    "MODEL.SWIN.APE": False,
    "MODEL.SWIN.PATCH_NORM": True,
    "MODEL.SWIN.OUT_FEATURES": ["res2", "res3", "res4", "res5"],
    "MODEL.SWIN.USE_CHECKPOINT": False,
    # from detectron2's add_deeplab_config, which add_maskformer2_config calls when needed
    "SOLVER.POLY_LR_POWER": 0.9,
    "SOLVER.POLY_LR_CONSTANT_ENDING": 0.0,
}

# Resolved values of representative official recipes, copied from the official recipes table.
_SWIN_L = dict(EMBED_DIM=192, DEPTHS=[2, 2, 18, 2], NUM_HEADS=[6, 12, 24, 48], WINDOW_SIZE=12)
RECIPE_EXPECTATIONS: Dict[str, Dict[str, Any]] = {
    "coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml": {
        "MODEL.BACKBONE.NAME": "build_resnet_backbone",
        "MODEL.RESNETS.DEPTH": 50,
        "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/torchvision/R-50.pkl",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 133,
        "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 100,
        "MODEL.MASK_FORMER.DEC_LAYERS": 10,
        "DATASETS.TRAIN": ["coco_2017_train_panoptic"],
        "DATASETS.TEST": ["coco_2017_val_panoptic_with_sem_seg"],
        "SOLVER.MAX_ITER": 368750,
        "SOLVER.STEPS": [327778, 355092],
        "SOLVER.LR_SCHEDULER_NAME": "WarmupMultiStepLR",
        "INPUT.DATASET_MAPPER_NAME": "coco_panoptic_lsj",
        "INPUT.IMAGE_SIZE": 1024,
        "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
        "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": True,
        "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.8,
    },
    "coco/instance-segmentation/swin/maskformer2_swin_large_IN21k_384_bs16_100ep.yaml": {
        "MODEL.BACKBONE.NAME": "D2SwinTransformer",
        **{f"MODEL.SWIN.{k}": v for k, v in _SWIN_L.items()},
        "MODEL.SWIN.PRETRAIN_IMG_SIZE": 384,
        "MODEL.WEIGHTS": "swin_large_patch4_window12_384_22k.pkl",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 80,
        "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 200,
        "DATASETS.TRAIN": ["coco_2017_train"],
        "SOLVER.MAX_ITER": 737500,
        "SOLVER.STEPS": [655556, 710184],
        "INPUT.DATASET_MAPPER_NAME": "coco_instance_lsj",
        "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": False,
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
        "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False,
    },
    "ade20k/semantic-segmentation/maskformer2_R50_bs16_160k.yaml": {
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 150,
        "DATASETS.TRAIN": ["ade20k_sem_seg_train"],
        "SOLVER.MAX_ITER": 160000,
        "SOLVER.LR_SCHEDULER_NAME": "WarmupPolyLR",
        "INPUT.DATASET_MAPPER_NAME": "mask_former_semantic",
        "INPUT.CROP.SIZE": [512, 512],
        "INPUT.MIN_SIZE_TEST": 512,
        "INPUT.MAX_SIZE_TEST": 2048,
        "INPUT.MIN_SIZE_TRAIN": [int(x * 0.1 * 512) for x in range(5, 21)],
        "TEST.AUG.ENABLED": False,
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False,
        "MODEL.RESNETS.NORM": "FrozenBN",
    },
    "ade20k/semantic-segmentation/maskformer2_R101_bs16_90k.yaml": {
        "MODEL.RESNETS.DEPTH": 101,
        "MODEL.WEIGHTS": "R-101.pkl",
        "MODEL.RESNETS.NORM": "SyncBN",
        "SOLVER.MAX_ITER": 160000,
    },
    "ade20k/semantic-segmentation/swin/maskformer2_swin_large_IN21k_384_bs16_160k_res640.yaml": {
        **{f"MODEL.SWIN.{k}": v for k, v in _SWIN_L.items()},
        "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 100,
        "INPUT.CROP.SIZE": [640, 640],
        "INPUT.MIN_SIZE_TEST": 640,
        "INPUT.MAX_SIZE_TEST": 2560,
    },
    "ade20k/instance-segmentation/maskformer2_R50_bs16_160k.yaml": {
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 100,
        "DATASETS.TEST": ["ade20k_instance_val"],
        "INPUT.DATASET_MAPPER_NAME": "mask_former_instance",
        "INPUT.CROP.SIZE": [640, 640],
        "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
        "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": True,
    },
    "cityscapes/instance-segmentation/swin/maskformer2_swin_tiny_bs16_90k.yaml": {
        "MODEL.SWIN.EMBED_DIM": 96,
        "MODEL.SWIN.DEPTHS": [2, 2, 6, 2],
        "MODEL.SWIN.WINDOW_SIZE": 7,
        "MODEL.WEIGHTS": "swin_tiny_patch4_window7_224.pkl",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 8,
        "DATASETS.TRAIN": ["cityscapes_fine_instance_seg_train"],
        "SOLVER.MAX_ITER": 90000,
        "INPUT.CROP.SIZE": [512, 1024],
        "INPUT.MIN_SIZE_TEST": 1024,
        "INPUT.MAX_SIZE_TEST": 2048,
        "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": False,
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
    },
    "cityscapes/semantic-segmentation/maskformer2_R101_bs16_90k.yaml": {
        "MODEL.RESNETS.DEPTH": 101,
        "MODEL.RESNETS.NORM": "SyncBN",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 19,
        "INPUT.DATASET_MAPPER_NAME": "mask_former_semantic",
    },
    "mapillary-vistas/panoptic-segmentation/maskformer_R50_bs16_300k.yaml": {
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 65,
        "MODEL.SEM_SEG_HEAD.IGNORE_VALUE": 65,
        "DATASETS.TRAIN": ["mapillary_vistas_panoptic_train"],
        "SOLVER.MAX_ITER": 300000,
        "INPUT.DATASET_MAPPER_NAME": "mask_former_panoptic",
        "INPUT.CROP.SIZE": [1024, 1024],
        "INPUT.MIN_SIZE_TEST": 2048,
        "INPUT.MAX_SIZE_TEST": 2048,
        "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False,
        "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": True,
        "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.0,
    },
}
# Shared by every official image recipe.
COMMON_EXPECTATIONS: Dict[str, Any] = {
    "MODEL.META_ARCHITECTURE": "MaskFormer",
    "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "MSDeformAttnPixelDecoder",
    "MODEL.SEM_SEG_HEAD.NORM": "GN",
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 6,
    "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "MultiScaleMaskedTransformerDecoder",
    "MODEL.MASK_FORMER.DEC_LAYERS": 10,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
    "MODEL.MASK_FORMER.DROPOUT": 0.0,
    "MODEL.MASK_FORMER.CLASS_WEIGHT": 2.0,
    "MODEL.MASK_FORMER.MASK_WEIGHT": 5.0,
    "MODEL.MASK_FORMER.DICE_WEIGHT": 5.0,
    "MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD": 0.8,
    "SOLVER.IMS_PER_BATCH": 16,
    "SOLVER.BASE_LR": 0.0001,
    "SOLVER.OPTIMIZER": "ADAMW",
    "SOLVER.WEIGHT_DECAY": 0.05,
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 0.01,
    "SOLVER.AMP.ENABLED": True,
    "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
    "MODEL.PIXEL_STD": [58.395, 57.12, 57.375],
}


def _new_cfg() -> CfgNode:
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    return cfg


def _load(*paths: Path) -> CfgNode:
    cfg = _new_cfg()
    for path in paths:
        cfg.merge_from_file(str(path))
    return cfg


def _load_with_video_keys(path: Path) -> CfgNode:
    """``path`` merged on the keys every entry point has (image and video, as build_config)."""
    cfg = _new_cfg()
    add_maskformer2_video_config(cfg)
    cfg.merge_from_file(str(path))
    return cfg


@pytest.fixture(autouse=True)
def _fresh_warning_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees no ignored-key warning as already emitted."""
    monkeypatch.setattr(validation_module, "_WARNED_KEYS", set())


def test_official_defaults() -> None:
    cfg = _new_cfg()
    for key, value in OFFICIAL_DEFAULTS.items():
        assert get_key(cfg, key) == value, key
    assert cfg.SOLVER.AMP.DTYPE == "float16"


def test_add_twice_keeps_merged_values() -> None:
    cfg = get_cfg()
    add_deeplab_config(cfg)  # the documented official order also works
    add_maskformer2_config(cfg)
    cfg.MODEL.MASK_FORMER.DEC_LAYERS = 3
    cfg.SOLVER.POLY_LR_POWER = 2.0
    add_maskformer2_config(cfg)
    assert cfg.MODEL.MASK_FORMER.DEC_LAYERS == 3
    assert cfg.SOLVER.POLY_LR_POWER == 2.0


@pytest.mark.parametrize("fixture", OFFICIAL_FIXTURES)
def test_official_full_dump_merges_unchanged(fixture: str) -> None:
    path = FIXTURES / fixture / "config_full.yaml"
    cfg = _load(path)
    expected = flatten(yaml.safe_load(path.read_text()))
    merged = flatten(yaml.safe_load(cfg.dump()))
    assert {k: merged[k] for k in expected} == expected
    # The dump lists every key of the official code: we define exactly those, plus ours.
    assert set(merged) - set(expected) == OUR_KEYS
    validate_maskformer2_config(cfg)


@pytest.mark.parametrize("fixture", OFFICIAL_FIXTURES)
def test_our_recipe_reproduces_official_dump(fixture: str) -> None:
    """Our recipe file + the fixture's overrides resolve to the official full config, key by key."""
    overrides = FIXTURES / fixture / "config_overrides.yaml"
    base = overrides.read_text().splitlines()[0].split("base config ")[1].strip()
    cfg = _load(REPO / base, overrides)
    expected = flatten(yaml.safe_load((FIXTURES / fixture / "config_full.yaml").read_text()))
    merged = flatten(yaml.safe_load(cfg.dump()))
    assert {k: v for k, v in merged.items() if k not in OUR_KEYS} == expected


def test_config_tree_is_complete() -> None:
    assert len(OFFICIAL_IMAGE_RECIPES) == 47  # every image recipe of the official release
    official = [p for p in RECIPES if p.parent.name not in OWN_FOLDERS]
    assert len(official) == 47 + 12  # and the 12 video recipes
    # one Base-*.yaml per dataset and task (10 image, 2 video)
    assert len(ALL_CONFIGS) - len(RECIPES) == 12
    assert {p.name for p in RECIPES if p.parent.name == "quick_schedules"} == {
        "Panoptic-R50-instant.yaml",
        "Instance-R50-instant.yaml",
        "Semantic-R50-instant.yaml",
        "VIS-R50-instant.yaml",
    }


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_config_merges(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _load_with_video_keys(path)
    if path in RECIPES:  # Base files leave the model keys at their defaults
        with caplog.at_level(logging.WARNING, logger="mask2former.config_validation"):
            validate_maskformer2_config(cfg)
        assert not caplog.records  # no recipe sets an ignored key
    if path in OFFICIAL_IMAGE_RECIPES:
        for key, value in COMMON_EXPECTATIONS.items():
            assert get_key(cfg, key) == value, key


def test_image_configs_merge_without_the_video_keys() -> None:
    """Image configs need only add_maskformer2_config (as the official image code)."""
    image_configs = [
        p
        for p in ALL_CONFIGS
        if p.relative_to(REPO / "configs").parts[0] not in VIDEO_FOLDERS
        and _load_with_video_keys(p).MODEL.META_ARCHITECTURE != "VideoMaskFormer"
    ]
    assert len(image_configs) == 47 + 10 + 4  # official recipes, Base files, ours
    for path in image_configs:
        _load(path)


@pytest.mark.parametrize("name", sorted(RECIPE_EXPECTATIONS))
def test_recipe_values(name: str) -> None:
    cfg = _load(REPO / "configs" / name)
    for key, value in RECIPE_EXPECTATIONS[name].items():
        assert get_key(cfg, key) == value, key


def _valid_cfg() -> CfgNode:
    return _load(REPO / "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml")


@pytest.mark.parametrize(
    "key, value",
    [
        ("MODEL.MASK_FORMER.DEC_LAYERS", 0),
        ("MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", 0),
        ("MODEL.MASK_FORMER.HIDDEN_DIM", 250),
        ("MODEL.MASK_FORMER.MASK_WEIGHT", -1.0),
        ("MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO", 1.5),
        ("MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD", 2.0),
        ("MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE", "res5"),
        ("MODEL.SEM_SEG_HEAD.NUM_CLASSES", 0),
        ("SOLVER.AMP.DTYPE", "float64"),
    ],
)
def test_validate_rejects_bad_value(key: str, value: Any) -> None:
    cfg = _valid_cfg()
    cfg.merge_from_list([key, value])
    with pytest.raises(ValueError, match=key.split(".")[-1]):
        validate_maskformer2_config(cfg)


def test_validate_rejects_no_inference_output() -> None:
    cfg = _valid_cfg()
    cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = False
    cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON = False
    cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = False
    with pytest.raises(ValueError, match="at least one"):
        validate_maskformer2_config(cfg)


def test_validate_accepts_bfloat16() -> None:
    cfg = _valid_cfg()
    cfg.SOLVER.AMP.DTYPE = "bfloat16"
    validate_maskformer2_config(cfg)


# A value that would matter for each compatibility-only key, were it read.
IGNORED_KEY_VALUES = [
    ("MODEL.MASK_FORMER.ENC_LAYERS", 6),
    ("MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS", 4),
]


@pytest.mark.parametrize("key, value", IGNORED_KEY_VALUES)
def test_validate_warns_once_on_ignored_key(
    key: str, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _valid_cfg()
    cfg.merge_from_list([key, value])
    with caplog.at_level(logging.WARNING, logger="mask2former.config_validation"):
        validate_maskformer2_config(cfg)
        validate_maskformer2_config(cfg)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and key in messages[0]


def _names_read_by_the_package() -> Set[str]:
    """Attribute names (``mf.DEC_LAYERS``) and string subscripts (``cfg["INPUT"]``) in the code of
    mask2former/, except config.py, which defines every key, and config_validation.py, which
    only checks them."""
    names: Set[str] = set()
    for path in (REPO / "mask2former").rglob("*.py"):
        if path.parent == REPO / "mask2former" and path.name in (
            "config.py",
            "config_validation.py",
        ):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                names.add(str(node.slice.value))
    return names


def test_every_added_key_is_read_or_compatibility_only() -> None:
    """Each key add_maskformer2_config adds (beyond detectron2's and DeepLab's) is read by the
    package (grep-level: its last name is read as an attribute outside config.py), or is listed
    in COMPATIBILITY_ONLY_KEYS, and then is read nowhere and warned about when set."""
    base = get_cfg()
    add_deeplab_config(base)
    added = set(flatten(yaml.safe_load(_new_cfg().dump()))) - set(
        flatten(yaml.safe_load(base.dump()))
    )
    assert len(added) > 50 and set(COMPATIBILITY_ONLY_KEYS) <= added
    read = _names_read_by_the_package()
    unread = {key for key in added if key.split(".")[-1] not in read}
    assert unread == set(COMPATIBILITY_ONLY_KEYS)
    assert {key for key, _ in IGNORED_KEY_VALUES} == set(COMPATIBILITY_ONLY_KEYS)
