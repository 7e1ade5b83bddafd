"""Dataset registration: builtin names and metadata, the lazy dataset root, the generic panoptic /
semantic / instance registration on the real samples, and the category tables."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

import mask2former.data  # noqa: F401  (registers the builtin datasets)
from mask2former import add_maskformer2_config, add_maskformer2_video_config
from mask2former.data.datasets import (
    RootRelativeMetadata,
    panoptic_metadata,
    register_panoptic_dataset,
    register_semantic_dataset,
)
from mask2former.data.datasets.categories.ade20k import ade20k_150_categories
from mask2former.data.datasets.categories.ade20k_full import ADE20K_FULL_CATEGORIES
from mask2former.data.datasets.categories.coco import (
    COCO_PANOPTIC_CATEGORIES,
    coco_stuff_categories,
)
from mask2former.data.datasets.categories.mapillary_vistas import mapillary_vistas_categories
from mask2former.data.datasets.register import CLASS_METADATA_KEYS

COCO_SAMPLE = Path(__file__).parent / "samples" / "coco_panoptic"
REPO = Path(__file__).resolve().parents[2]

# name -> (evaluator_type, ignore_label, number of stuff_classes, number of thing_classes)
BUILTIN = {
    "coco_2017_train_panoptic": ("coco_panoptic_seg", 255, 133, 80),
    "coco_2017_val_panoptic": ("coco_panoptic_seg", 255, 133, 80),
    "coco_2017_train_panoptic_with_sem_seg": ("coco_panoptic_seg", 255, 133, 80),
    "coco_2017_val_panoptic_with_sem_seg": ("coco_panoptic_seg", 255, 133, 80),
    "ade20k_panoptic_train": ("ade20k_panoptic_seg", 255, 150, 100),
    "ade20k_panoptic_val": ("ade20k_panoptic_seg", 255, 150, 100),
    "mapillary_vistas_panoptic_train": ("mapillary_vistas_panoptic_seg", 65, 65, 65),
    "mapillary_vistas_panoptic_val": ("mapillary_vistas_panoptic_seg", 65, 65, 65),
    "ade20k_sem_seg_train": ("sem_seg", 255, 150, None),
    "ade20k_sem_seg_val": ("sem_seg", 255, 150, None),
    "ade20k_full_sem_seg_train": ("sem_seg", 65535, 847, None),
    "ade20k_full_sem_seg_val": ("sem_seg", 65535, 847, None),
    "mapillary_vistas_sem_seg_train": ("sem_seg", 65, 65, None),
    "mapillary_vistas_sem_seg_val": ("sem_seg", 65, 65, None),
    "coco_2017_train_stuff_10k_sem_seg": ("sem_seg", 255, 171, None),
    "coco_2017_test_stuff_10k_sem_seg": ("sem_seg", 255, 171, None),
    "ade20k_instance_train": ("coco", None, None, 100),
    "ade20k_instance_val": ("coco", None, None, 100),
    # detectron2 builtins used as they are
    "coco_2017_train": ("coco", None, None, 80),
    "cityscapes_fine_sem_seg_train": ("cityscapes_sem_seg", 255, 19, 8),
    "cityscapes_fine_instance_seg_train": ("cityscapes_instance", None, 19, 8),
    "cityscapes_fine_panoptic_train": ("cityscapes_panoptic_seg", 255, 19, 19),
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_dataset_metadata(name: str) -> None:
    evaluator_type, ignore_label, num_stuff, num_things = BUILTIN[name]
    assert name in DatasetCatalog.list()
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == evaluator_type
    assert meta.get("ignore_label") == ignore_label
    assert len(meta.get("stuff_classes", [])) == (num_stuff or 0)
    assert len(meta.get("thing_classes", [])) == (num_things or 0)


@pytest.mark.parametrize(
    "name", [n for n, v in BUILTIN.items() if v[0].endswith("panoptic_seg") and "city" not in n]
)
def test_builtin_panoptic_metadata_maps(name: str) -> None:
    meta = MetadataCatalog.get(name)
    stuff = meta.stuff_dataset_id_to_contiguous_id
    things = meta.thing_dataset_id_to_contiguous_id
    assert sorted(stuff.values()) == list(range(len(meta.stuff_classes)))
    assert set(things.items()) <= set(stuff.items())  # one contiguous id space
    assert meta.label_divisor == 1000
    for key in ("image_root", "panoptic_root", "panoptic_json", "json_file"):
        assert meta.get(key) is not None, key
    # COCO panoptic has semantic PNGs only in the "_with_sem_seg" variants (official names)
    has_semantic = not name.startswith("coco_") or name.endswith("_with_sem_seg")
    assert (meta.get("sem_seg_root") is not None) == has_semantic


def test_dataset_root_is_read_lazily(
    mapillary_layout_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DETECTRON2_DATASETS set after import decides where our builtin datasets are read from.

    (detectron2's own builtins, e.g. ``ade20k_sem_seg_val``, read it when ``detectron2.data`` is
    imported; they are not registered again, see the test below.)"""
    name = "mapillary_vistas_sem_seg_val"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(mapillary_layout_root))
    meta = MetadataCatalog.get(name)
    expected = mapillary_layout_root / "mapillary_vistas" / "validation" / "labels"
    assert meta.sem_seg_root == str(expected)
    assert meta.as_dict()["sem_seg_root"] == str(expected)
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == 3
    assert all(Path(d["file_name"]).is_file() for d in dicts)
    assert all(d["sem_seg_file_name"].startswith(str(expected)) for d in dicts)

    elsewhere = mapillary_layout_root / "nowhere"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(elsewhere))
    assert MetadataCatalog.get(name).image_root.startswith(str(elsewhere))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        DatasetCatalog.get(name)
    with pytest.raises(FileNotFoundError, match="panoptic_val2017.json"):
        DatasetCatalog.get("coco_2017_val_panoptic_with_sem_seg")


# Lists, in a fresh process that does not import mask2former, every dataset detectron2 registers by
# itself: its loader's qualified name and its metadata.
_LIST_DETECTRON2_BUILTINS = """
import json
from detectron2.data import DatasetCatalog, MetadataCatalog
listing = {
    name: {
        "loader": DatasetCatalog[name].__module__ + "." + DatasetCatalog[name].__qualname__,
        "metadata": MetadataCatalog.get(name).as_dict(),
    }
    for name in DatasetCatalog.list()
}
print(json.dumps(listing, default=str))
"""


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@pytest.fixture(scope="module")
def detectron2_builtins() -> Dict[str, Dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-c", _LIST_DETECTRON2_BUILTINS],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_detectron2_builtins_are_not_registered_again(detectron2_builtins: Dict) -> None:
    """Importing mask2former keeps detectron2's registration of its own datasets (loader, paths,
    evaluator settings); only the class metadata of the ones Mask2Former uses changes, as in the
    official code."""
    assert {"coco_2017_val_panoptic", "ade20k_sem_seg_val"} <= set(detectron2_builtins)
    changed = set()
    for name, builtin in detectron2_builtins.items():
        loader = DatasetCatalog[name]
        assert f"{loader.__module__}.{loader.__qualname__}" == builtin["loader"], name
        ours = _as_json(MetadataCatalog.get(name).as_dict())
        theirs = builtin["metadata"]
        assert set(ours) >= set(theirs), name
        for key in set(ours) | set(theirs):
            if ours.get(key) != theirs.get(key):
                assert key in CLASS_METADATA_KEYS, (name, key)
                changed.add(name)
    assert changed == {
        "coco_2017_train_panoptic",
        "coco_2017_val_panoptic",
        "ade20k_sem_seg_train",
        "ade20k_sem_seg_val",
    }
    coco = MetadataCatalog.get("coco_2017_val_panoptic")
    assert (
        coco.thing_classes
        == MetadataCatalog.get("coco_2017_val_panoptic_with_sem_seg").thing_classes
    )
    assert len(MetadataCatalog.get("ade20k_sem_seg_val").stuff_colors) == 150


def test_every_dataset_of_the_configs_is_registered() -> None:
    """Each DATASETS.TRAIN / TEST name of configs/ (the official names) is registered."""
    names = set()
    for path in (REPO / "configs").rglob("*.yaml"):
        cfg = get_cfg()  # Base-*.yaml files are not complete configs: merged, not validated
        add_maskformer2_config(cfg)
        add_maskformer2_video_config(cfg)
        cfg.merge_from_file(str(path))
        names.update(cfg.DATASETS.TRAIN, cfg.DATASETS.TEST)
    assert len(names) >= 20
    assert sorted(names - set(DatasetCatalog.list())) == []


def test_register_panoptic_dataset_loads_coco_sample(
    coco_panoptic_dataset: str, coco_json: dict
) -> None:
    dicts = DatasetCatalog.get(coco_panoptic_dataset)
    meta = MetadataCatalog.get(coco_panoptic_dataset)
    assert len(dicts) == 2
    assert sum(len(d["segments_info"]) for d in dicts) == 50
    crowd = [s for d in dicts for s in d["segments_info"] if s["iscrowd"]]
    json_crowd = [s for a in coco_json["annotations"] for s in a["segments_info"] if s["iscrowd"]]
    assert len(crowd) == len(json_crowd) > 0
    images = {im["id"]: im for im in coco_json["images"]}
    for d in dicts:
        assert Path(d["file_name"]).is_file() and Path(d["pan_seg_file_name"]).is_file()
        assert Path(d["sem_seg_file_name"]).is_file()
        assert (d["height"], d["width"]) == (
            images[d["image_id"]]["height"],
            images[d["image_id"]]["width"],
        )
        for segment in d["segments_info"]:
            assert 0 <= segment["category_id"] < len(meta.stuff_classes)
            name = meta.stuff_classes[segment["category_id"]]
            assert segment["isthing"] == (name in meta.thing_classes)
    assert meta.evaluator_type == "coco_panoptic_seg"
    assert meta.panoptic_json == str(COCO_SAMPLE / "panoptic_examples.json")
    assert not isinstance(meta, RootRelativeMetadata)


def test_register_panoptic_dataset_rejects_duplicates_and_unknown_categories(
    coco_json: dict, tmp_path: Path
) -> None:
    args = dict(
        image_root=str(COCO_SAMPLE / "images"),
        panoptic_root=str(COCO_SAMPLE / "panoptic_examples"),
        panoptic_json=str(COCO_SAMPLE / "panoptic_examples.json"),
    )
    name = "test_duplicate_panoptic"
    things_only = [c for c in coco_json["categories"] if c["isthing"]]
    register_panoptic_dataset(name, panoptic_metadata(things_only), **args)
    with pytest.raises(ValueError, match="already registered"):
        register_panoptic_dataset(name, panoptic_metadata(coco_json["categories"]), **args)
    with pytest.raises(ValueError, match="panoptic_examples.json.*category_id"):
        DatasetCatalog.get(name)  # stuff categories are unknown to the things-only metadata
    register_panoptic_dataset(
        name, panoptic_metadata(coco_json["categories"]), **args, replace=True
    )
    assert len(DatasetCatalog.get(name)) == 2


def test_register_semantic_dataset(ade20k_dataset: str) -> None:
    dicts = DatasetCatalog.get(ade20k_dataset)
    meta = MetadataCatalog.get(ade20k_dataset)
    assert len(dicts) == 3
    assert meta.evaluator_type == "sem_seg" and meta.ignore_label == 255
    assert len(meta.stuff_classes) == 150
    for d in dicts:
        label = np.asarray(Image.open(d["sem_seg_file_name"]))
        image = Image.open(d["file_name"])
        assert label.shape == (image.height, image.width)


def test_register_semantic_dataset_missing_folder_names_it(tmp_path: Path) -> None:
    name = "test_missing_semantic"
    register_semantic_dataset(name, str(tmp_path / "imgs"), str(tmp_path / "labels"), ["a", "b"])
    with pytest.raises(FileNotFoundError, match="imgs"):
        DatasetCatalog.get(name)


def test_register_instance_dataset_from_converted_coco_sample(
    coco_instance_dataset: str, coco_instances_json: Path
) -> None:
    """COCO instances json made from the panoptic sample by the Mapillary-style converter."""
    content = json.loads(coco_instances_json.read_text())
    name = coco_instance_dataset
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == 2
    assert sum(len(d["annotations"]) for d in dicts) == len(content["annotations"]) > 0
    assert MetadataCatalog.get(name).evaluator_type == "coco"


def test_root_relative_metadata_resolves_on_access(monkeypatch: pytest.MonkeyPatch) -> None:
    meta = RootRelativeMetadata(name="x").set_root_relative_paths(json_file="a/b.json")
    meta.set(evaluator_type="coco")
    monkeypatch.setenv("DETECTRON2_DATASETS", "/first")
    assert meta.json_file == os.path.join("/first", "a/b.json")
    monkeypatch.setenv("DETECTRON2_DATASETS", "/second")
    assert meta.as_dict() == {
        "name": "x",
        "evaluator_type": "coco",
        "json_file": os.path.join("/second", "a/b.json"),
    }
    with pytest.raises(AttributeError):
        meta.panoptic_json  # noqa: B018


def test_category_tables() -> None:
    ade = ade20k_150_categories()
    assert len(ade) == 150 and sum(c["isthing"] for c in ade) == 100
    assert len(ADE20K_FULL_CATEGORIES) == 847
    assert len({i for i, _ in ADE20K_FULL_CATEGORIES}) == 847
    mapillary = mapillary_vistas_categories()
    assert [c["id"] for c in mapillary] == list(range(1, 66))
    stuff = coco_stuff_categories()
    assert len(stuff) == 171 and len({c["id"] for c in stuff}) == 171
    assert sum(c["isthing"] for c in stuff) == 80
    assert len(COCO_PANOPTIC_CATEGORIES) == 133


def test_panoptic_metadata_conventions() -> None:
    categories = [
        {"id": 5, "name": "a", "isthing": 1, "color": [1, 2, 3]},
        {"id": 9, "name": "b", "isthing": 0, "color": [4, 5, 6]},
        {"id": 2, "name": "c", "isthing": 1, "color": [7, 8, 9]},
    ]
    meta = panoptic_metadata(categories)
    assert meta["thing_classes"] == ["a", "c"] and meta["stuff_classes"] == ["a", "b", "c"]
    assert meta["thing_dataset_id_to_contiguous_id"] == {5: 0, 2: 2}
    assert meta["stuff_dataset_id_to_contiguous_id"] == {5: 0, 9: 1, 2: 2}
    assert meta["thing_colors"] == [[1, 2, 3], [7, 8, 9]]
    assert panoptic_metadata(categories, all_classes_are_things=True)["thing_classes"] == [
        "a",
        "b",
        "c",
    ]
