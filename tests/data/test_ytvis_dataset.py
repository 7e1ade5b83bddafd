"""YouTube-VIS format: the loader, ``register_ytvis_instances`` and the builtin registrations."""

from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from video_samples import rle, write_video_json

from mask2former.data.datasets import load_ytvis_json, register_ytvis_instances
from mask2former.data.datasets.categories.ytvis import ytvis_categories

CATEGORIES = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]


def _square(top: int, left: int, size: tuple = (8, 10)) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[top : top + 3, left : left + 3] = True
    return mask


def _annotations() -> list:
    """Track 11 (dog): RLE, absent, uncompressed RLE. Track 12 (cat): polygon in frame 0, an
    invalid polygon in frame 1 (dropped), absent in frame 2."""
    uncompressed = {"size": [8, 10], "counts": [44, 3, 5, 3, 5, 3, 17]}
    return [
        {
            "id": 11,
            "video_id": 7,
            "category_id": 7,
            "iscrowd": 0,
            "segmentations": [rle(_square(1, 2)), None, uncompressed],
            "bboxes": [[2, 1, 3, 3], None, [5, 4, 3, 3]],
            "areas": [9, None, 9],
        },
        {
            "id": 12,
            "video_id": 7,
            "category_id": 3,
            "iscrowd": 0,
            "segmentations": [[[0, 0, 4, 0, 4, 4, 0, 4]], [[0, 0, 1, 1]], None],
            "bboxes": [[0, 0, 4, 4], [0, 0, 1, 1], None],
            "areas": [16, 1, None],
        },
    ]


def test_load_records(tmp_path: Path) -> None:
    path = write_video_json(tmp_path, _annotations(), CATEGORIES)
    (record,) = load_ytvis_json(str(path), str(tmp_path))
    assert record["video_id"] == 7 and record["length"] == 3
    assert (record["height"], record["width"]) == (8, 10)
    assert record["file_names"] == [str(tmp_path / f"v/{t:05d}.jpg") for t in range(3)]
    frames = record["annotations"]
    assert [[obj["id"] for obj in frame] for frame in frames] == [[11, 12], [], [11]]
    dog, cat = frames[0]
    # Contiguous ids follow the sorted dataset ids: cat (3) -> 0, dog (7) -> 1.
    assert (dog["category_id"], cat["category_id"]) == (1, 0)
    assert dog["bbox"] == [2, 1, 3, 3] and dog["bbox_mode"] == BoxMode.XYWH_ABS
    assert np.array_equal(mask_util.decode(dog["segmentation"]), _square(1, 2))
    assert cat["segmentation"] == [[0, 0, 4, 0, 4, 4, 0, 4]]
    # The uncompressed RLE of frame 2 is converted to a compressed one.
    assert isinstance(frames[2][0]["segmentation"]["counts"], bytes)
    assert mask_util.decode(frames[2][0]["segmentation"]).sum() == 9


def test_test_split_has_empty_frames(tmp_path: Path) -> None:
    path = write_video_json(tmp_path, None, CATEGORIES)
    (record,) = load_ytvis_json(str(path), str(tmp_path))
    assert record["annotations"] == [[], [], []]


def test_register_sets_metadata_from_json(tmp_path: Path) -> None:
    path = write_video_json(tmp_path, _annotations(), CATEGORIES)
    name = "test_ytvis_register"
    register_ytvis_instances(name, {}, str(path), str(tmp_path), replace=True)
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "ytvis" and meta.json_file == str(path)
    assert meta.image_root == str(tmp_path)
    assert len(DatasetCatalog.get(name)) == 1
    assert meta.thing_classes == ["cat", "dog"]
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1}
    with pytest.raises(ValueError, match="already registered"):
        register_ytvis_instances(name, {}, str(path), str(tmp_path))


def test_metadata_mismatch_raises(tmp_path: Path) -> None:
    path = write_video_json(tmp_path, _annotations(), CATEGORIES)
    name = "test_ytvis_mismatch"
    metadata = {"thing_classes": ["dog", "cat"], "thing_dataset_id_to_contiguous_id": {3: 0, 7: 1}}
    register_ytvis_instances(name, metadata, str(path), str(tmp_path), replace=True)
    with pytest.raises(ValueError, match="'cat'.*does not match"):
        DatasetCatalog.get(name)


def test_bad_files_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_ytvis_json(str(tmp_path / "missing.json"), str(tmp_path))
    path = write_video_json(tmp_path, _annotations(), CATEGORIES)
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        load_ytvis_json(str(path), str(tmp_path / "elsewhere"))
    bad = _annotations()
    bad[0]["category_id"] = 5
    path = write_video_json(tmp_path, bad, CATEGORIES)
    with pytest.raises(ValueError, match="category_id 5"):
        load_ytvis_json(str(path), str(tmp_path))


@pytest.mark.parametrize("year", [2019, 2021])
def test_builtin_youtube_vis(year: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))  # read at access, not import
    for split, folder in (("train", "train"), ("val", "valid"), ("test", "test")):
        meta = MetadataCatalog.get(f"ytvis_{year}_{split}")
        assert meta.evaluator_type == "ytvis"
        assert meta.json_file == str(tmp_path / f"ytvis_{year}" / f"{folder}.json")
        assert meta.image_root == str(tmp_path / f"ytvis_{year}" / folder / "JPEGImages")
        assert len(meta.thing_classes) == len(meta.thing_colors) == 40
        assert meta.thing_dataset_id_to_contiguous_id == {i: i - 1 for i in range(1, 41)}
        with pytest.raises(FileNotFoundError, match="datasets/README.md"):
            DatasetCatalog.get(f"ytvis_{year}_{split}")
    meta = MetadataCatalog.get(f"ytvis_{year}_val")
    if year == 2019:
        assert meta.thing_classes[:3] == ["person", "giant_panda", "lizard"]
        assert meta.thing_classes[-1] == "tennis_racket"
        assert meta.thing_colors[0] == [220, 20, 60]
    else:
        assert meta.thing_classes[:3] == ["airplane", "bear", "bird"]
        assert meta.thing_classes[-1] == "zebra" and "flying_disc" in meta.thing_classes
        assert meta.thing_colors[2] == [255, 109, 65]
    assert [c["name"] for c in ytvis_categories(year)] == meta.thing_classes
