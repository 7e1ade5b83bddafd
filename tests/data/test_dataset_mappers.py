"""Dataset mappers on the real COCO-panoptic and ADE20K samples: registry, training outputs
(shapes, padding, non-empty masks, classes in range, crop drops masks, LSJ size), inference mode,
colour jitter, and errors naming the bad file."""

import random
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from detectron2.utils.env import seed_all_rng
from PIL import Image

from mask2former.data import build_dataset_mapper
from mask2former.data.mappers import (
    COCOInstanceNewBaselineDatasetMapper,
    COCOPanopticNewBaselineDatasetMapper,
    ColorAugSSDTransform,
    MaskFormerInstanceDatasetMapper,
    MaskFormerPanopticDatasetMapper,
    MaskFormerSemanticDatasetMapper,
)
from mask2former.data.panoptic_format import rgb_to_id

COCO_SAMPLE = Path(__file__).parent / "samples" / "coco_panoptic"


def _non_crowd(d: Dict) -> int:
    return sum(not s["iscrowd"] for s in d["segments_info"])


def _check_instances(out: Dict, num_classes: int) -> None:
    image, instances = out["image"], out["instances"]
    assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
    assert instances.image_size == tuple(image.shape[-2:])
    masks, classes = instances.gt_masks, instances.gt_classes
    assert masks.dtype == torch.bool and masks.shape[-2:] == image.shape[-2:]
    assert classes.dtype == torch.int64 and len(classes) == len(masks) > 0
    assert masks.flatten(1).any(dim=1).all(), "empty masks must be dropped"
    assert ((classes >= 0) & (classes < num_classes)).all()


@pytest.mark.parametrize(
    "name, cls",
    [
        ("mask_former_semantic", MaskFormerSemanticDatasetMapper),
        ("mask_former_panoptic", MaskFormerPanopticDatasetMapper),
        ("mask_former_instance", MaskFormerInstanceDatasetMapper),
        ("coco_instance_lsj", COCOInstanceNewBaselineDatasetMapper),
        ("coco_panoptic_lsj", COCOPanopticNewBaselineDatasetMapper),
    ],
)
def test_registry_builds_official_names(make_cfg, coco_panoptic_dataset, name, cls) -> None:
    mapper = build_dataset_mapper(make_cfg(name, coco_panoptic_dataset), is_train=True)
    assert type(mapper) is cls and mapper.is_train
    assert not build_dataset_mapper(make_cfg(name, coco_panoptic_dataset), is_train=False).is_train


def test_registry_unknown_name_lists_registered(make_cfg, coco_panoptic_dataset) -> None:
    with pytest.raises(KeyError, match="mask_former_semantic.*") as err:
        build_dataset_mapper(make_cfg("no_such_mapper", coco_panoptic_dataset))
    assert "no_such_mapper" in str(err.value) and "coco_panoptic_lsj" in str(err.value)


def test_semantic_mapper_per_class_masks(make_cfg, ade20k_dataset) -> None:
    seed_all_rng(0)
    mapper = build_dataset_mapper(make_cfg("mask_former_semantic", ade20k_dataset))
    for d in DatasetCatalog.get(ade20k_dataset):
        out = mapper(d)
        _check_instances(out, 150)
        image, sem_seg, instances = out["image"], out["sem_seg"], out["instances"]
        assert image.shape[-2:] == (256, 256)  # crop 192 padded to SIZE_DIVISIBILITY 256
        assert sem_seg.shape == (256, 256) and sem_seg.dtype == torch.int64
        assert (image[:, 192:, :] == 128).all() and (sem_seg[192:, :] == 255).all()
        assert 255 not in instances.gt_classes.tolist()
        assert sorted(instances.gt_classes.tolist()) == sorted(
            c for c in torch.unique(sem_seg).tolist() if c != 255
        )
        for c, mask in zip(instances.gt_classes, instances.gt_masks):
            assert torch.equal(mask, sem_seg == c)
        assert torch.equal(instances.gt_masks.any(0), sem_seg != 255)
        assert "sem_seg_file_name" not in out and d["sem_seg_file_name"]  # input dict untouched


def test_panoptic_mapper_segments(make_cfg, coco_panoptic_dataset) -> None:
    seed_all_rng(0)
    mapper = build_dataset_mapper(make_cfg("mask_former_panoptic", coco_panoptic_dataset))
    for d in DatasetCatalog.get(coco_panoptic_dataset):
        out = mapper(d)
        _check_instances(out, 133)
        masks = out["instances"].gt_masks
        assert len(masks) <= _non_crowd(d)
        assert masks.sum(0).max() <= 1  # segments do not overlap
        assert out["sem_seg"].shape == out["image"].shape[-2:]
        assert not masks[:, 192:, :].any()  # padding is VOID


def test_panoptic_mapper_without_semantic_labels(make_cfg, coco_panoptic_no_semseg_dataset) -> None:
    seed_all_rng(0)
    name = coco_panoptic_no_semseg_dataset
    mapper = build_dataset_mapper(make_cfg("mask_former_panoptic", name))
    out = mapper(DatasetCatalog.get(name)[0])
    _check_instances(out, 133)
    assert "sem_seg" not in out


def test_instance_mapper(make_cfg, coco_instance_dataset) -> None:
    seed_all_rng(0)
    mapper = build_dataset_mapper(make_cfg("mask_former_instance", coco_instance_dataset))
    for d in DatasetCatalog.get(coco_instance_dataset):
        out = mapper(d)
        _check_instances(out, 80)
        assert out["image"].shape[-2:] == (256, 256)
        assert len(out["instances"]) <= sum(not a["iscrowd"] for a in d["annotations"])
        assert "annotations" not in out


def test_lsj_panoptic_output_size_and_crop_drops_masks(make_cfg, coco_panoptic_dataset) -> None:
    seed_all_rng(0)
    cfg = make_cfg("coco_panoptic_lsj", coco_panoptic_dataset, MIN_SCALE=2.0, MAX_SCALE=2.0)
    mapper = build_dataset_mapper(cfg)
    dropped = 0
    for d in DatasetCatalog.get(coco_panoptic_dataset):
        for _ in range(2):
            out = mapper(d)
            _check_instances(out, 133)
            assert out["image"].shape == (3, 256, 256)
            assert out["sem_seg"].shape == (256, 256)
            boxes = out["instances"].gt_boxes.tensor
            assert boxes.shape == (len(out["instances"]), 4)
            assert (boxes[:, 2:] > boxes[:, :2]).all()
            dropped += _non_crowd(d) - len(out["instances"])
    assert dropped > 0  # a 256 crop of a 2x image loses segments


def test_lsj_panoptic_small_scale_pads(make_cfg, coco_panoptic_dataset) -> None:
    seed_all_rng(0)
    cfg = make_cfg("coco_panoptic_lsj", coco_panoptic_dataset, MIN_SCALE=0.3, MAX_SCALE=0.3)
    out = build_dataset_mapper(cfg)(DatasetCatalog.get(coco_panoptic_dataset)[0])
    assert out["image"].shape == (3, 256, 256)
    assert (out["sem_seg"][-40:, :] == 255).all()  # padding is ignored
    assert not out["instances"].gt_masks[:, -40:, :].any()


def test_lsj_instance(make_cfg, coco_instance_dataset) -> None:
    seed_all_rng(0)
    mapper = build_dataset_mapper(make_cfg("coco_instance_lsj", coco_instance_dataset))
    for d in DatasetCatalog.get(coco_instance_dataset):
        out = mapper(d)
        assert out["image"].shape == (3, 256, 256)
        assert out["padding_mask"].shape == (256, 256) and out["padding_mask"].dtype == torch.bool
        if len(out["instances"]):
            _check_instances(out, 80)
            assert not out["instances"].gt_masks[:, out["padding_mask"]].any()


@pytest.mark.parametrize(
    "mapper_name, dataset_fixture",
    [
        ("mask_former_semantic", "ade20k_dataset"),
        ("mask_former_panoptic", "coco_panoptic_dataset"),
        ("mask_former_instance", "coco_instance_dataset"),
        ("coco_instance_lsj", "coco_instance_dataset"),
        ("coco_panoptic_lsj", "coco_panoptic_dataset"),
    ],
)
def test_inference_mode(make_cfg, request, mapper_name, dataset_fixture) -> None:
    dataset = request.getfixturevalue(dataset_fixture)
    mapper = build_dataset_mapper(make_cfg(mapper_name, dataset), is_train=False)
    d = DatasetCatalog.get(dataset)[0]
    image = Image.open(d["file_name"])
    out = mapper(d)
    assert min(out["image"].shape[-2:]) == 200  # MIN_SIZE_TEST
    assert (out["height"], out["width"]) == (image.height, image.width)
    for key in ("instances", "sem_seg", "annotations", "sem_seg_file_name", "pan_seg_file_name"):
        assert key not in out


def test_color_aug_ssd_changes_colors_only() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
    seg = rng.integers(0, 5, size=(16, 20)).astype(np.uint8)
    transform = ColorAugSSDTransform(img_format="RGB")
    random.seed(0)
    outputs = [transform.apply_image(image.copy()) for _ in range(8)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outputs)
    assert any(not np.array_equal(o, image) for o in outputs)
    assert np.array_equal(transform.apply_segmentation(seg), seg)
    with pytest.raises(ValueError, match="YUV"):
        ColorAugSSDTransform(img_format="YUV")


def test_semantic_label_size_mismatch_names_file(make_cfg, ade20k_dataset, tmp_path) -> None:
    d = dict(DatasetCatalog.get(ade20k_dataset)[0])
    bad = tmp_path / "small_label.png"
    Image.open(d["sem_seg_file_name"]).resize((50, 40), Image.NEAREST).save(bad)
    d["sem_seg_file_name"] = str(bad)
    mapper = build_dataset_mapper(make_cfg("mask_former_semantic", ade20k_dataset))
    with pytest.raises(ValueError, match="small_label.png.*50x40"):
        mapper(d)


def test_semantic_label_out_of_range_names_file(make_cfg, ade20k_dataset, tmp_path) -> None:
    d = dict(DatasetCatalog.get(ade20k_dataset)[0])
    label = np.asarray(Image.open(d["sem_seg_file_name"])).copy()
    label[:5, :5] = 200
    bad = tmp_path / "bad_label.png"
    Image.fromarray(label).save(bad)
    d["sem_seg_file_name"] = str(bad)
    mapper = build_dataset_mapper(make_cfg("mask_former_semantic", ade20k_dataset))
    with pytest.raises(ValueError, match=r"bad_label.png.*\[200\]"):
        mapper(d)


def test_panoptic_bad_inputs_name_file(make_cfg, coco_panoptic_dataset, tmp_path) -> None:
    mapper = build_dataset_mapper(make_cfg("mask_former_panoptic", coco_panoptic_dataset))
    d = dict(DatasetCatalog.get(coco_panoptic_dataset)[0])
    d["segments_info"] = [dict(s, category_id=500) for s in d["segments_info"]]
    with pytest.raises(ValueError, match=r"\.png.*category_id 500"):
        mapper(d)

    d = dict(DatasetCatalog.get(coco_panoptic_dataset)[0])
    bad = tmp_path / "cropped_panoptic.png"
    Image.open(d["pan_seg_file_name"]).crop((0, 0, 100, 100)).save(bad)
    d["pan_seg_file_name"] = str(bad)
    with pytest.raises(ValueError, match="cropped_panoptic.png"):
        mapper(d)


def test_panoptic_masks_match_annotation_without_augmentation(coco_panoptic_dataset) -> None:
    """With no augmentation, each mask is exactly its segment in the panoptic PNG."""
    meta = MetadataCatalog.get(coco_panoptic_dataset)
    mapper = MaskFormerPanopticDatasetMapper(
        augmentations=[],
        image_format="RGB",
        ignore_label=255,
        size_divisibility=-1,
        num_classes=len(meta.stuff_classes),
    )
    d = DatasetCatalog.get(coco_panoptic_dataset)[1]
    out = mapper(d)
    ids = rgb_to_id(np.asarray(Image.open(d["pan_seg_file_name"]).convert("RGB")))
    segments = [s for s in d["segments_info"] if not s["iscrowd"]]
    assert out["instances"].gt_classes.tolist() == [s["category_id"] for s in segments]
    for s, mask in zip(segments, out["instances"].gt_masks):
        assert np.array_equal(mask.numpy(), ids == s["id"])
        assert int(mask.sum()) == s["area"]


def test_instance_mapper_polygons_crop_drops_objects() -> None:
    """Polygons: a fixed crop keeps the object inside it, drops the one outside and the crowd."""

    def box(x0: int, y0: int, x1: int, y1: int, crowd: int, category: int) -> Dict:
        return {
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "bbox_mode": BoxMode.XYWH_ABS,
            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
            "category_id": category,
            "iscrowd": crowd,
        }

    d = {
        "file_name": str(COCO_SAMPLE / "images" / "000000142238.jpg"),
        "height": 427,
        "width": 640,
        "annotations": [
            box(10, 20, 60, 80, 0, 3),
            box(400, 300, 500, 400, 0, 5),
            box(0, 0, 30, 30, 1, 7),
        ],
    }
    mapper = MaskFormerInstanceDatasetMapper(
        augmentations=[T.CropTransform(0, 0, 200, 150)],
        image_format="RGB",
        size_divisibility=-1,
        num_classes=80,
    )
    out = mapper(d)
    instances = out["instances"]
    assert out["image"].shape == (3, 150, 200)
    assert instances.gt_classes.tolist() == [3]
    expected = torch.zeros(150, 200, dtype=torch.bool)
    expected[20:80, 10:60] = True
    assert (instances.gt_masks[0] ^ expected).sum() <= 2 * (50 + 60)  # rasterised edges
    assert instances.gt_masks[0][25:75, 15:55].all() and not instances.gt_masks[0][90:].any()

    d["annotations"][0]["category_id"] = 80
    with pytest.raises(ValueError, match="000000142238.jpg.*category_id 80"):
        mapper(d)
