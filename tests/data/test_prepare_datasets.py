"""datasets/prepare_*.py: conversions on the real samples and on tiny synthetic annotations, and
clear errors for missing inputs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
from panopticapi.utils import IdGenerator
from PIL import Image

from mask2former.data.datasets.categories.ade20k import ade20k_150_categories
from mask2former.data.panoptic_format import id_to_rgb, rgb_to_id

SAMPLES = Path(__file__).parent / "samples"
COCO_SAMPLE = SAMPLES / "coco_panoptic"
ADE_SAMPLE = SAMPLES / "ade20k"


def test_ade20k_label_conversion(script) -> None:
    prepare = script("prepare_ade20k_sem_seg")
    label = np.array([[0, 1, 2], [149, 150, 0]], dtype=np.uint8)
    out = prepare.convert_ade20k_label(label)
    assert out.dtype == np.uint8
    assert out.tolist() == [[255, 0, 1], [148, 149, 255]]
    with pytest.raises(ValueError, match="odd.png.*151"):
        prepare.convert_ade20k_label(np.array([[151]], dtype=np.uint8), "odd.png")


def test_ade20k_sem_seg_on_samples(script, ade20k_root: Path) -> None:
    converted = ade20k_root / "ADEChallengeData2016" / "annotations_detectron2" / "validation"
    originals = sorted((ADE_SAMPLE / "annotations").glob("*.png"))
    assert len(originals) == 3
    for original in originals:
        raw = np.asarray(Image.open(original)).astype(np.int64)
        out = np.asarray(Image.open(converted / original.name)).astype(np.int64)
        assert out.shape == raw.shape
        assert (out[raw == 0] == 255).all()
        assert np.array_equal(out[raw > 0], raw[raw > 0] - 1)
        assert out[out != 255].max() < 150


def test_ade20k_sem_seg_missing_dir(script, tmp_path: Path) -> None:
    prepare = script("prepare_ade20k_sem_seg")
    with pytest.raises(FileNotFoundError, match="annotations"):
        prepare.main(["--root", str(tmp_path)])


def test_coco_semantic_from_panoptic(coco_json: dict, coco_semseg_dir: Path) -> None:
    index = {c["id"]: i for i, c in enumerate(coco_json["categories"])}
    for annotation in coco_json["annotations"]:
        semantic = np.asarray(Image.open(coco_semseg_dir / annotation["file_name"]))
        ids = rgb_to_id(
            np.asarray(Image.open(COCO_SAMPLE / "panoptic_examples" / annotation["file_name"]))
        )
        labelled = np.zeros(ids.shape, dtype=bool)
        for segment in annotation["segments_info"]:
            mask = ids == segment["id"]
            assert int(mask.sum()) == segment["area"]
            assert (semantic[mask] == index[segment["category_id"]]).all()
            labelled |= mask
        assert (semantic[~labelled] == 255).all()


def test_coco_semantic_missing_inputs(script, tmp_path: Path) -> None:
    prepare = script("prepare_coco_semantic_annos_from_panoptic_annos")
    with pytest.raises(FileNotFoundError, match="panoptic_val2017.json"):
        prepare.main(["--root", str(tmp_path), "--splits", "val2017", "--workers", "1"])


def _tiny_ade20k(root: Path) -> Path:
    """A 1-image ADEChallengeData2016 tree: wall (stuff), two beds and a person (things)."""
    ade = root / "ADEChallengeData2016"
    for sub in ("images", "annotations", "annotations_instance"):
        (ade / sub / "validation").mkdir(parents=True)
    semantic = np.full((6, 8), 1, dtype=np.uint8)  # wall (label 1)
    semantic[0, :] = 0  # other
    instance = np.zeros((6, 8, 3), dtype=np.uint8)
    instance[1:3, 0:3] = (1, 1, 0)  # bed (instance class 1) #1
    instance[4:6, 0:2] = (1, 2, 0)  # bed #2
    instance[3:6, 5:8] = (4, 3, 0)  # person (instance class 4)
    semantic[1:3, 0:3] = semantic[4:6, 0:2] = 8  # bed (label 8)
    semantic[3:6, 5:8] = 13  # person (label 13)
    Image.fromarray(np.zeros((6, 8, 3), dtype=np.uint8)).save(
        ade / "images" / "validation" / "ADE_val_1.jpg"
    )
    Image.fromarray(semantic).save(ade / "annotations" / "validation" / "ADE_val_1.png")
    Image.fromarray(instance).save(ade / "annotations_instance" / "validation" / "ADE_val_1.png")
    return ade


def test_ade20k_panoptic_conversion(script, tmp_path: Path) -> None:
    prepare = script("prepare_ade20k_pan_seg")
    ade = _tiny_ade20k(tmp_path)
    content = prepare.convert_split(ade, "val", "validation")
    assert json.loads((ade / "ade20k_panoptic_val.json").read_text()) == content
    (annotation,) = content["annotations"]
    segments = annotation["segments_info"]
    assert sorted(s["category_id"] for s in segments) == [0, 7, 7, 12]  # wall, bed x2, person
    ids = rgb_to_id(np.asarray(Image.open(ade / "ade20k_panoptic_val" / "ADE_val_1.png")))
    for s in segments:
        assert int((ids == s["id"]).sum()) == s["area"]
    assert sum(s["area"] for s in segments) == 6 * 8 - 8  # all but the "other" row
    assert (ids[0] == 0).all()
    things = {c["id"] for c in content["categories"] if c["isthing"]}
    assert {7, 12} <= things and 0 not in things


def test_ade20k_panoptic_rejects_mixed_instance(script) -> None:
    prepare = script("prepare_ade20k_pan_seg")
    semantic = np.ones((2, 2), dtype=np.uint8)
    instance = np.zeros((2, 2, 3), dtype=np.uint8)
    instance[0] = (1, 1, 0)
    instance[1] = (2, 1, 0)  # the same instance with two classes
    categories = {c["id"]: c for c in ade20k_150_categories()}
    with pytest.raises(ValueError, match="bad.png"):
        prepare.ade20k_panoptic(semantic, instance, IdGenerator(categories), "bad.png")


def test_ade20k_instance_conversion(script, tmp_path: Path) -> None:
    prepare = script("prepare_ade20k_ins_seg")
    ade = _tiny_ade20k(tmp_path)
    content = prepare.convert_split(ade, "val", "validation")
    annotations = content["annotations"]
    assert [a["id"] for a in annotations] == [1, 2, 3]
    assert sorted(a["category_id"] for a in annotations) == [7, 7, 12]
    assert sorted(a["area"] for a in annotations) == [4, 6, 9]
    for a in annotations:
        mask = mask_util.decode(a["segmentation"])
        assert mask.shape == (6, 8) and int(mask.sum()) == a["area"]
    assert len(content["categories"]) == 100
    shutil.rmtree(ade / "annotations_instance")
    with pytest.raises(FileNotFoundError, match="annotations_instance/validation"):
        prepare.convert_split(ade, "val", "validation")


def test_panoptic_to_instance_json_on_coco_sample(script, coco_json: dict) -> None:
    prepare = script("prepare_mapillary_vistas_ins_seg")
    content = prepare.convert_panoptic_json(
        COCO_SAMPLE / "panoptic_examples.json",
        COCO_SAMPLE / "panoptic_examples",
        coco_json["categories"],
    )
    things = {c["id"] for c in coco_json["categories"] if c["isthing"]}
    expected = [
        s
        for a in coco_json["annotations"]
        for s in a["segments_info"]
        if s["category_id"] in things
    ]
    assert len(content["annotations"]) == len(expected)
    assert [a["area"] for a in content["annotations"]] == [s["area"] for s in expected]
    assert [a["iscrowd"] for a in content["annotations"]] == [s["iscrowd"] for s in expected]
    assert min(a["id"] for a in content["annotations"]) == 1
    assert {c["id"] for c in content["categories"]} == things
    with pytest.raises(FileNotFoundError, match="nope.json"):
        prepare.convert_panoptic_json(Path("nope.json"), COCO_SAMPLE, coco_json["categories"])


def test_ade20k_full_label_conversion(script) -> None:
    prepare = script("prepare_ade20k_full_sem_seg")
    seg = np.zeros((2, 3, 3), dtype=np.uint8)
    seg[0, 0] = (115, 162, 0)  # class 11 * 256 + 162 = 2978: "wall", label 0
    seg[0, 1] = (10, 56, 0)  # 1 * 256 + 56 = 312: "building, edifice", label 1
    seg[1, :] = (0, 1, 0)  # class 1: not among the 847
    class_mask = prepare.decode_class_mask(seg)
    assert class_mask[0, 0] == 2978 and class_mask[0, 1] == 312
    label = prepare.convert_class_mask(class_mask)
    assert label.dtype == np.uint16
    assert label.tolist() == [[0, 1, 65535], [65535, 65535, 65535]]
    image = np.zeros((1024, 768, 3), dtype=np.uint8)
    small_image, small_label = prepare.resize_pair(image, np.zeros((1024, 768), np.uint16))
    assert small_image.shape == (683, 512, 3) and small_label.shape == (683, 512)
    with pytest.raises(FileNotFoundError, match="index_ade20k.pkl"):
        prepare.main(["--root", "/nonexistent"])


def test_id_rgb_round_trip() -> None:
    ids = np.array([[0, 1, 256], [65536, 16777215, 5119213]])
    assert np.array_equal(rgb_to_id(id_to_rgb(ids)), ids)
