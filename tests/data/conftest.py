"""Fixtures of the data tests: real COCO-panoptic / ADE20K samples (copied into samples/), the
datasets/prepare_*.py scripts as modules, and small registered datasets built from the samples."""

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest
from detectron2.config import CfgNode, get_cfg
from detectron2.projects.deeplab import add_deeplab_config

from mask2former.config import add_maskformer2_config
from mask2former.data import bad_samples
from mask2former.data.datasets import (
    panoptic_metadata,
    register_instance_dataset,
    register_panoptic_dataset,
    register_semantic_dataset,
)
from mask2former.data.datasets.categories.ade20k import ADE20K_150_CLASSES

SAMPLES = Path(__file__).parent / "samples"
REPO = Path(__file__).resolve().parents[2]
COCO_SAMPLE = SAMPLES / "coco_panoptic"
ADE_SAMPLE = SAMPLES / "ade20k"


@pytest.fixture(autouse=True)
def fresh_bad_sample_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no pending skip event (a skip in one test must not be attached to a
    sample mapped by the next)."""
    monkeypatch.setattr(bad_samples, "_PENDING", bad_samples._PendingEvents())


def load_script(name: str) -> ModuleType:
    """Import ``datasets/<name>.py`` (the folder is not a package)."""
    path = REPO / "datasets" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"m2f_datasets_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def script() -> Callable[[str], ModuleType]:
    return load_script


@pytest.fixture(scope="session")
def coco_json() -> dict:
    with open(COCO_SAMPLE / "panoptic_examples.json") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def coco_semseg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Semantic PNGs of the COCO sample, made by the COCO preparation script."""
    out = tmp_path_factory.mktemp("coco_semseg")
    load_script(
        "prepare_coco_semantic_annos_from_panoptic_annos"
    ).separate_coco_semantic_from_panoptic(
        str(COCO_SAMPLE / "panoptic_examples.json"),
        str(COCO_SAMPLE / "panoptic_examples"),
        str(out),
    )
    return out


def _register_coco_panoptic_sample(name: str, coco_json: dict, **optional_paths: str) -> str:
    register_panoptic_dataset(
        name,
        panoptic_metadata(coco_json["categories"]),
        image_root=str(COCO_SAMPLE / "images"),
        panoptic_root=str(COCO_SAMPLE / "panoptic_examples"),
        panoptic_json=str(COCO_SAMPLE / "panoptic_examples.json"),
        **optional_paths,
    )
    return name


@pytest.fixture(scope="session")
def coco_panoptic_dataset(coco_json: dict, coco_semseg_dir: Path) -> str:
    """``test_coco_panoptic_sample``: the 2-image COCO sample with semantic PNGs."""
    return _register_coco_panoptic_sample(
        "test_coco_panoptic_sample", coco_json, sem_seg_root=str(coco_semseg_dir)
    )


@pytest.fixture(scope="session")
def coco_panoptic_no_semseg_dataset(coco_json: dict) -> str:
    return _register_coco_panoptic_sample("test_coco_panoptic_sample_no_semseg", coco_json)


@pytest.fixture(scope="session")
def coco_instances_json(coco_json: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """COCO instances json of the panoptic sample's things (made by the Mapillary converter)."""
    content = load_script("prepare_mapillary_vistas_ins_seg").convert_panoptic_json(
        COCO_SAMPLE / "panoptic_examples.json",
        COCO_SAMPLE / "panoptic_examples",
        coco_json["categories"],
    )
    json_file = tmp_path_factory.mktemp("coco_instances") / "instances.json"
    json_file.write_text(json.dumps(content))
    return json_file


@pytest.fixture(scope="session")
def coco_instance_dataset(coco_json: dict, coco_instances_json: Path) -> str:
    """``test_coco_instances_sample``: :func:`coco_instances_json` with the sample's images."""
    things = [c for c in coco_json["categories"] if c["isthing"]]
    name = "test_coco_instances_sample"
    register_instance_dataset(
        name,
        {
            "thing_classes": [c["name"] for c in things],
            "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
        },
        str(COCO_SAMPLE / "images"),
        str(coco_instances_json),
    )
    return name


@pytest.fixture(scope="session")
def ade20k_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``ADEChallengeData2016`` tree with the 3 sample images as the validation split and
    labels converted by the ADE20K preparation script."""
    root = tmp_path_factory.mktemp("d2_datasets")
    ade = root / "ADEChallengeData2016"
    shutil.copytree(ADE_SAMPLE / "images", ade / "images" / "validation")
    shutil.copytree(ADE_SAMPLE / "annotations", ade / "annotations" / "validation")
    load_script("prepare_ade20k_sem_seg").convert_split(
        ade / "annotations" / "validation", ade / "annotations_detectron2" / "validation"
    )
    return root


@pytest.fixture(scope="session")
def mapillary_layout_root(ade20k_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset root whose ``mapillary_vistas/validation/{images,labels}`` hold the 3 ADE20K sample
    images and converted labels: the layout of ``mapillary_vistas_sem_seg_val``."""
    root = tmp_path_factory.mktemp("d2_datasets_mapillary")
    ade = ade20k_root / "ADEChallengeData2016"
    split = root / "mapillary_vistas" / "validation"
    shutil.copytree(ade / "images" / "validation", split / "images")
    shutil.copytree(ade / "annotations_detectron2" / "validation", split / "labels")
    return root


@pytest.fixture(scope="session")
def ade20k_dataset(ade20k_root: Path) -> str:
    name = "test_ade20k_sem_seg_sample"
    ade = ade20k_root / "ADEChallengeData2016"
    register_semantic_dataset(
        name,
        str(ade / "images" / "validation"),
        str(ade / "annotations_detectron2" / "validation"),
        ADE20K_150_CLASSES,
    )
    return name


@pytest.fixture
def make_cfg() -> Callable[..., CfgNode]:
    """Config for the mappers: small sizes, the given mapper and training dataset."""

    def build(mapper: str, dataset: str, **input_overrides) -> CfgNode:
        cfg = get_cfg()
        add_deeplab_config(cfg)
        add_maskformer2_config(cfg)
        cfg.DATASETS.TRAIN = (dataset,)
        cfg.INPUT.DATASET_MAPPER_NAME = mapper
        cfg.INPUT.FORMAT = "RGB"
        cfg.INPUT.MIN_SIZE_TRAIN = (256,)
        cfg.INPUT.MAX_SIZE_TRAIN = 1024
        cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
        cfg.INPUT.MIN_SIZE_TEST = 200
        cfg.INPUT.MAX_SIZE_TEST = 1000
        cfg.INPUT.CROP.ENABLED = True
        cfg.INPUT.CROP.TYPE = "absolute"
        cfg.INPUT.CROP.SIZE = (192, 192)
        cfg.INPUT.SIZE_DIVISIBILITY = 256
        cfg.INPUT.COLOR_AUG_SSD = True
        cfg.INPUT.IMAGE_SIZE = 256
        for key, value in input_overrides.items():
            setattr(cfg.INPUT, key, value)
        return cfg

    return build
