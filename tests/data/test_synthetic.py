"""The synthetic panoptic dataset: determinism, COCO-panoptic validity, lazy registration."""

import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image
from pycocotools import mask as mask_utils

from mask2former.data.datasets import synthetic
from mask2former.data.datasets.synthetic import (
    SYNTHETIC_CATEGORIES,
    SyntheticSplit,
    ensure_synthetic_dataset,
    generate_synthetic_split,
    register_synthetic_datasets,
)
from mask2former.data.panoptic_format import rgb_to_id

SMALL = SyntheticSplit("train", num_images=8, image_size=64, seed=0)


def read_tree(root: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_generation_is_deterministic(tmp_path: Path) -> None:
    generate_synthetic_split(tmp_path / "a", SMALL)
    generate_synthetic_split(tmp_path / "b", SMALL)
    a, b = read_tree(tmp_path / "a"), read_tree(tmp_path / "b")
    assert len(a) == 3 * SMALL.num_images + 2
    assert a == b
    other = SyntheticSplit("train", num_images=8, image_size=64, seed=5)
    generate_synthetic_split(tmp_path / "c", other)
    assert read_tree(tmp_path / "c")["panoptic.json"] != a["panoptic.json"]


def test_valid_coco_panoptic_format(tmp_path: Path) -> None:
    generate_synthetic_split(tmp_path, SMALL)
    pan = json.loads((tmp_path / "panoptic.json").read_text())
    inst = json.loads((tmp_path / "instances.json").read_text())
    cats = {c["id"]: c for c in pan["categories"]}
    assert cats == {c["id"]: c for c in SYNTHETIC_CATEGORIES}
    assert {c["isthing"] for c in cats.values()} == {0, 1}
    contiguous = {c["id"]: i for i, c in enumerate(pan["categories"])}
    assert len(pan["images"]) == len(pan["annotations"]) == SMALL.num_images
    image_ids = {im["id"] for im in pan["images"]}
    assert 0 not in image_ids
    num_things = 0
    saw_several_things = False
    for im, ann in zip(pan["images"], pan["annotations"]):
        assert ann["image_id"] == im["id"]
        assert (tmp_path / "images" / im["file_name"]).is_file()
        rgb = np.asarray(Image.open(tmp_path / "panoptic" / ann["file_name"]))
        assert rgb.shape == (im["height"], im["width"], 3)
        ids = rgb_to_id(rgb)
        segs = ann["segments_info"]
        seg_ids = [s["id"] for s in segs]
        assert len(set(seg_ids)) == len(seg_ids) and 0 not in seg_ids
        assert set(np.unique(ids).tolist()) == set(seg_ids)  # every pixel labelled, no orphan id
        semantic = np.asarray(Image.open(tmp_path / "panoptic_semseg" / ann["file_name"]))
        things = [s for s in segs if cats[s["category_id"]]["isthing"]]
        stuff = [s for s in segs if not cats[s["category_id"]]["isthing"]]
        assert stuff and things
        assert len({s["category_id"] for s in stuff}) == len(stuff)  # one segment per stuff class
        saw_several_things |= len(things) >= 2
        num_things += len(things)
        for s in segs:
            mask = ids == s["id"]
            assert s["area"] == int(mask.sum()) > 0
            ys, xs = np.nonzero(mask)
            assert s["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            assert (semantic[mask] == contiguous[s["category_id"]]).all()
            assert s["iscrowd"] == 0
    assert saw_several_things
    # the instances json holds exactly the thing segments, with ids >= 1 and matching masks
    assert len(inst["annotations"]) == num_things
    assert min(a["id"] for a in inst["annotations"]) >= 1
    assert {c["id"] for c in inst["categories"]} == {c["id"] for c in cats.values() if c["isthing"]}
    first = inst["annotations"][0]
    img = next(im for im in pan["images"] if im["id"] == first["image_id"])
    ids = rgb_to_id(
        np.asarray(Image.open(tmp_path / "panoptic" / img["file_name"].replace(".jpg", ".png")))
    )
    decoded = mask_utils.decode(first["segmentation"]).astype(bool)
    assert decoded.sum() == first["area"]
    assert len(np.unique(ids[decoded])) == 1


def test_ensure_caches_and_regenerates_incomplete(tmp_path: Path) -> None:
    ensure_synthetic_dataset(tmp_path, (SMALL,))
    marker = tmp_path / "train" / "COMPLETE"
    before = read_tree(tmp_path / "train")
    stamp = marker.stat().st_mtime_ns
    ensure_synthetic_dataset(tmp_path, (SMALL,))  # complete: reused as is
    assert marker.stat().st_mtime_ns == stamp
    (tmp_path / "train" / "panoptic.json").unlink()
    marker.unlink()  # an interrupted copy has no marker
    ensure_synthetic_dataset(tmp_path, (SMALL,))
    assert read_tree(tmp_path / "train") == before
    assert [p.name for p in tmp_path.iterdir()] == ["train"]  # no temporary folder left


@pytest.fixture
def clean_catalog():
    names = ["m2f_synthetic_panoptic_train", "m2f_synthetic_panoptic_val"]

    def remove() -> None:
        for name in names:
            if name in DatasetCatalog.list():
                DatasetCatalog.remove(name)
            if name in MetadataCatalog.list():
                MetadataCatalog.remove(name)

    remove()
    yield
    remove()


def test_registration_is_lazy(tmp_path: Path, monkeypatch, clean_catalog) -> None:
    small_val = SyntheticSplit("val", num_images=4, image_size=64, seed=1)
    monkeypatch.setattr(synthetic, "SYNTHETIC_SPLITS", (SMALL, small_val))
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    names = register_synthetic_datasets()
    assert names == ["m2f_synthetic_panoptic_train", "m2f_synthetic_panoptic_val"]
    assert not any(tmp_path.iterdir())  # registering wrote nothing
    records = DatasetCatalog.get("m2f_synthetic_panoptic_val")
    assert len(records) == 4
    assert (tmp_path / "m2f_synthetic" / "val" / "COMPLETE").is_file()
    assert not (tmp_path / "m2f_synthetic" / "train").exists()  # only the requested split
    meta = MetadataCatalog.get("m2f_synthetic_panoptic_val")
    assert meta.evaluator_type == "coco_panoptic_seg"
    assert Path(meta.json_file).is_file() and Path(meta.sem_seg_root).is_dir()
    assert meta.stuff_classes == [c["name"] for c in SYNTHETIC_CATEGORIES]
    assert meta.thing_classes == ["circle", "square", "triangle"]
    assert Path(records[0]["sem_seg_file_name"]).is_file()
    assert {s["isthing"] for r in records for s in r["segments_info"]} == {True, False}
