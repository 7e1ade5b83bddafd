"""The synthetic video dataset: determinism, YouTube-VIS validity, lazy generation on first load."""

import json
from pathlib import Path
from typing import Dict

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image
from video_samples import TINY_SPLIT, make_tiny_split

from mask2former.data.datasets import load_ytvis_json
from mask2former.data.datasets.generated import MARKER_NAME, is_generated
from mask2former.data.datasets.synthetic_video import (
    SYNTHETIC_VIDEO_CATEGORIES,
    SYNTHETIC_VIDEO_SPLITS,
    SyntheticVideoSplit,
    ensure_synthetic_video_dataset,
    generate_synthetic_video_split,
)


def _tree(root: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_split(tmp_path_factory.mktemp("synthetic_video"))


def test_generation_is_deterministic(tiny: Path, tmp_path: Path) -> None:
    again = make_tiny_split(tmp_path / "again")
    assert _tree(again) == _tree(tiny)
    other = SyntheticVideoSplit("tiny", num_videos=4, seed=5, min_frames=5, max_frames=7)
    generate_synthetic_video_split(tmp_path / "other", other)
    assert (tmp_path / "other" / "instances.json").read_bytes() != _tree(tiny)["instances.json"]


def test_annotations_match_the_masks(tiny: Path) -> None:
    content = json.loads((tiny / "instances.json").read_text())
    assert content["categories"] == SYNTHETIC_VIDEO_CATEGORIES
    videos = {v["id"]: v for v in content["videos"]}
    assert len(videos) == TINY_SPLIT.num_videos
    for video in videos.values():
        assert TINY_SPLIT.min_frames <= video["length"] <= TINY_SPLIT.max_frames
        assert len(video["file_names"]) == video["length"]
        for name in video["file_names"]:
            image = Image.open(tiny / "JPEGImages" / name)
            assert image.size == (TINY_SPLIT.width, TINY_SPLIT.height)
    absent = 0
    track_ids = [a["id"] for a in content["annotations"]]
    assert len(set(track_ids)) == len(track_ids) and min(track_ids) >= 1
    for track in content["annotations"]:
        length = videos[track["video_id"]]["length"]
        assert len(track["segmentations"]) == len(track["bboxes"]) == len(track["areas"]) == length
        assert any(s is not None for s in track["segmentations"])  # seen at least once
        for segm, box, area in zip(track["segmentations"], track["bboxes"], track["areas"]):
            if segm is None:  # absent from this frame: null everywhere, as in YouTube-VIS
                assert box is None and area is None
                absent += 1
                continue
            mask = mask_util.decode(segm).astype(bool)
            assert mask.shape == (TINY_SPLIT.height, TINY_SPLIT.width)
            assert area == mask.sum() > 0
            ys, xs = np.nonzero(mask)
            assert box == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert absent > 0  # shapes enter and leave


def _touches(a: np.ndarray, b: np.ndarray) -> bool:
    """True when [H, W] masks ``a`` and ``b`` share an edge (a 4-neighbour pair of pixels)."""
    grown = a.copy()
    grown[1:] |= a[:-1]
    grown[:-1] |= a[1:]
    grown[:, 1:] |= a[:, :-1]
    grown[:, :-1] |= a[:, 1:]
    return bool((grown & b).any())


def test_shapes_occlude_each_other(tiny: Path) -> None:
    """Occluded parts belong to the front shape only: the tracks of a frame are disjoint, and
    some of them border each other (one shape partly hidden by another)."""
    content = json.loads((tiny / "instances.json").read_text())
    touching = 0
    for video in content["videos"]:
        tracks = [a for a in content["annotations"] if a["video_id"] == video["id"]]
        for t in range(video["length"]):
            masks = [
                mask_util.decode(a["segmentations"][t]).astype(bool)
                for a in tracks
                if a["segmentations"][t]
            ]
            if masks:
                assert np.stack(masks).sum(axis=0).max() <= 1
            touching += sum(_touches(a, b) for i, a in enumerate(masks) for b in masks[i + 1 :])
    assert touching > 0


def test_records_load(tiny: Path) -> None:
    records = load_ytvis_json(str(tiny / "instances.json"), str(tiny / "JPEGImages"))
    assert [r["video_id"] for r in records] == [1, 2, 3, 4]
    for record in records:
        assert len(record["annotations"]) == len(record["file_names"]) == record["length"]
        assert all(Path(f).is_file() for f in record["file_names"])
        for frame in record["annotations"]:
            assert all(0 <= obj["category_id"] < 3 for obj in frame)


def test_builtin_splits_generate_on_first_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    meta = MetadataCatalog.get("m2f_synthetic_video_val")
    assert meta.evaluator_type == "ytvis" and meta.thing_classes == ["circle", "square", "triangle"]
    assert meta.json_file == str(tmp_path / "m2f_synthetic_video" / "val" / "instances.json")
    assert not (tmp_path / "m2f_synthetic_video").exists()  # registration wrote nothing
    records = DatasetCatalog.get("m2f_synthetic_video_val")
    (val,) = [s for s in SYNTHETIC_VIDEO_SPLITS if s.name == "val"]
    assert len(records) == val.num_videos
    split_dir = tmp_path / "m2f_synthetic_video" / "val"
    assert (split_dir / MARKER_NAME).is_file() and not (
        tmp_path / "m2f_synthetic_video/train"
    ).exists()
    stamp = (split_dir / "instances.json").stat().st_mtime_ns
    DatasetCatalog.get("m2f_synthetic_video_val")  # reused, not generated again
    assert (split_dir / "instances.json").stat().st_mtime_ns == stamp


def test_incomplete_copy_is_generated_again(tmp_path: Path) -> None:
    split = SyntheticVideoSplit("val", num_videos=2, seed=9, min_frames=5, max_frames=5)
    root = ensure_synthetic_video_dataset(tmp_path, (split,))
    assert is_generated(root / "val", json.loads((root / "val" / MARKER_NAME).read_text()))
    (root / "val" / MARKER_NAME).unlink()  # as after an interrupted run
    (root / "val" / "instances.json").write_text("{}")
    ensure_synthetic_video_dataset(tmp_path, (split,))
    assert len(json.loads((root / "val" / "instances.json").read_text())["videos"]) == 2
