"""``build_evaluator`` dispatch: every registered evaluator_type gives the right evaluators."""

from pathlib import Path
from typing import Any, Dict, List

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
    DatasetEvaluator,
    DatasetEvaluators,
)

from mask2former.evaluation import (
    EVALUATOR_REGISTRY,
    InstanceSegEvaluator,
    PanopticSegEvaluator,
    SemanticSegEvaluator,
    YTVISEvaluator,
    build_evaluator,
    evaluator_factories,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
INSTANCES_JSON = str(SAMPLES / "coco_instances_golden" / "instances_val2014_100.json")
PANOPTIC_JSON = str(SAMPLES / "coco_panoptic" / "panoptic_examples.json")
CLASSES = ["a", "b", "c"]

# Panoptic-style metadata shared by the synthetic datasets below (class 0 and 1 are things).
PANOPTIC_META: Dict[str, Any] = {
    "thing_classes": CLASSES[:2],
    "stuff_classes": CLASSES,
    "thing_dataset_id_to_contiguous_id": {1: 0, 2: 1},
    "stuff_dataset_id_to_contiguous_id": {1: 0, 2: 1, 3: 2},
    "ignore_label": 255,
    "label_divisor": 1000,
    "panoptic_json": PANOPTIC_JSON,
    "panoptic_root": str(SAMPLES / "coco_panoptic" / "panoptic_examples"),
}
SEM_SEG_RECORDS = [{"file_name": "x.jpg", "sem_seg_file_name": "x.png", "image_id": 0}]


def register(name: str, records: List[Dict[str, Any]], **metadata: Any) -> str:
    """Register a dataset that is never loaded for images (evaluators only read metadata)."""
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).set(**metadata)
    return name


def evaluator_types(evaluator: DatasetEvaluator) -> List[type]:
    if isinstance(evaluator, DatasetEvaluators):
        return [type(e) for e in evaluator._evaluators]
    return [type(evaluator)]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Dict[str, str]:
    """One dataset per evaluator_type, named by the type."""
    image_root = str(tmp_path_factory.mktemp("images"))
    gt_dir = str(tmp_path_factory.mktemp("cityscapes_gt"))
    coco = "m2f_test_registry_coco"
    if coco not in DatasetCatalog.list():
        register_coco_instances(coco, {}, INSTANCES_JSON, image_root)
    return {
        "coco": coco,
        "sem_seg": register(
            "m2f_test_registry_sem_seg",
            SEM_SEG_RECORDS,
            stuff_classes=CLASSES,
            ignore_label=255,
            evaluator_type="sem_seg",
        ),
        "ade20k_instance": register(
            "m2f_test_registry_ade20k_instance",
            [],
            json_file=INSTANCES_JSON,
            evaluator_type="ade20k_instance",
        ),
        "mapillary_vistas_instance": register(
            "m2f_test_registry_mapillary_instance",
            [],
            json_file=INSTANCES_JSON,
            evaluator_type="mapillary_vistas_instance",
        ),
        "lvis": register(
            "m2f_test_registry_lvis", [], json_file=INSTANCES_JSON, evaluator_type="lvis"
        ),
        "cityscapes_instance": register(
            "m2f_test_registry_cityscapes_instance",
            [],
            gt_dir=gt_dir,
            thing_classes=CLASSES,
            evaluator_type="cityscapes_instance",
        ),
        "cityscapes_sem_seg": register(
            "m2f_test_registry_cityscapes_sem_seg",
            [],
            gt_dir=gt_dir,
            stuff_classes=CLASSES,
            evaluator_type="cityscapes_sem_seg",
        ),
        # COCO panoptic as detectron2's register_coco_panoptic_separated-style "with_sem_seg"
        # variant registers it: sem_seg_root and the instances json in the metadata.
        "coco_panoptic_seg": register(
            "m2f_test_registry_coco_panoptic",
            SEM_SEG_RECORDS,
            evaluator_type="coco_panoptic_seg",
            sem_seg_root=image_root,
            json_file=INSTANCES_JSON,
            **PANOPTIC_META,
        ),
        # ADE20K as the official code registers it: no sem_seg_root, but per-record sem_seg files.
        "ade20k_panoptic_seg": register(
            "m2f_test_registry_ade20k_panoptic",
            SEM_SEG_RECORDS,
            evaluator_type="ade20k_panoptic_seg",
            json_file=INSTANCES_JSON,
            **PANOPTIC_META,
        ),
        # Mapillary Vistas as the official code registers it: json_file=None, no sem seg files.
        "mapillary_vistas_panoptic_seg": register(
            "m2f_test_registry_mapillary_panoptic",
            [{"file_name": "x.jpg", "image_id": 0}],
            evaluator_type="mapillary_vistas_panoptic_seg",
            json_file=None,
            **PANOPTIC_META,
        ),
        "cityscapes_panoptic_seg": register(
            "m2f_test_registry_cityscapes_panoptic",
            [],
            evaluator_type="cityscapes_panoptic_seg",
            gt_dir=gt_dir,
            **PANOPTIC_META,
        ),
        # YouTube-VIS video instance segmentation (register_ytvis_instances).
        "ytvis": register(
            "m2f_test_registry_ytvis",
            [],
            evaluator_type="ytvis",
            json_file=str(SAMPLES / "ytvis_golden" / "gt.json"),
        ),
    }


class FakeLVISEvaluator(DatasetEvaluator):
    """Stands in for detectron2's LVISEvaluator, whose ``lvis`` package is not installed here."""

    def __init__(self, dataset_name: str, output_dir: str) -> None:
        self.dataset_name, self.output_dir = dataset_name, output_dir


# evaluator_type -> evaluators with SEMANTIC_ON, INSTANCE_ON and PANOPTIC_ON all set. Where the
# official code uses detectron2's COCOEvaluator, COCOPanopticEvaluator and SemSegEvaluator, these
# are their subclasses (InstanceSegEvaluator, PanopticSegEvaluator, SemanticSegEvaluator).
EXPECTED_ALL_ON = {
    "coco": [InstanceSegEvaluator],
    "sem_seg": [SemanticSegEvaluator],
    "ade20k_instance": [InstanceSegEvaluator],
    "mapillary_vistas_instance": [InstanceSegEvaluator],
    "lvis": [FakeLVISEvaluator],
    "cityscapes_instance": [CityscapesInstanceEvaluator],
    "cityscapes_sem_seg": [CityscapesSemSegEvaluator],
    "coco_panoptic_seg": [PanopticSegEvaluator, SemanticSegEvaluator, InstanceSegEvaluator],
    "ade20k_panoptic_seg": [PanopticSegEvaluator, SemanticSegEvaluator, InstanceSegEvaluator],
    "mapillary_vistas_panoptic_seg": [PanopticSegEvaluator],
    "cityscapes_panoptic_seg": [
        PanopticSegEvaluator,
        CityscapesSemSegEvaluator,
        CityscapesInstanceEvaluator,
    ],
    "ytvis": [YTVISEvaluator],
}


def test_every_registered_type_is_covered() -> None:
    # The types mask2former registers; a user's (e.g. docs/examples/custom_evaluator.py, imported
    # by tests/docs in the same session) are not built-in.
    builtin = {t for t, f in EVALUATOR_REGISTRY if f.__module__.startswith("mask2former.")}
    assert set(EXPECTED_ALL_ON) == builtin


@pytest.mark.parametrize("evaluator_type", sorted(EXPECTED_ALL_ON))
def test_dispatch_all_metrics_on(
    evaluator_type: str,
    datasets: Dict[str, str],
    make_cfg,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(evaluator_factories, "LVISEvaluator", FakeLVISEvaluator)
    cfg = make_cfg(semantic_on=True, instance_on=True, panoptic_on=True)
    evaluator = build_evaluator(cfg, datasets[evaluator_type], output_dir=str(tmp_path))
    assert evaluator_types(evaluator) == EXPECTED_ALL_ON[evaluator_type]


@pytest.mark.parametrize(
    "flags, expected",
    [
        ((False, False, True), [PanopticSegEvaluator]),
        ((True, False, False), [SemanticSegEvaluator]),
        ((False, True, False), [InstanceSegEvaluator]),
        ((True, True, False), [SemanticSegEvaluator, InstanceSegEvaluator]),
    ],
)
def test_panoptic_companions_follow_the_test_flags(
    flags, expected: List[type], datasets: Dict[str, str], make_cfg, tmp_path: Path
) -> None:
    cfg = make_cfg(*flags)
    evaluator = build_evaluator(cfg, datasets["coco_panoptic_seg"], output_dir=str(tmp_path))
    assert evaluator_types(evaluator) == expected


def test_default_output_dir_is_inference(datasets: Dict[str, str], make_cfg) -> None:
    cfg = make_cfg()
    evaluator = build_evaluator(cfg, datasets["coco"])
    assert evaluator._output_dir == str(Path(cfg.OUTPUT_DIR) / "inference")


def test_all_metrics_off_is_not_implemented(datasets: Dict[str, str], make_cfg) -> None:
    cfg = make_cfg(semantic_on=False, instance_on=False, panoptic_on=False)
    with pytest.raises(NotImplementedError, match="m2f_test_registry_coco_panoptic"):
        build_evaluator(cfg, datasets["coco_panoptic_seg"])


def test_dataset_without_evaluator_type(make_cfg) -> None:
    name = register("m2f_test_registry_untyped", [])
    with pytest.raises(ValueError, match=f"Dataset '{name}' has no 'evaluator_type'"):
        build_evaluator(make_cfg(), name)


def test_unregistered_dataset_and_unknown_type(make_cfg) -> None:
    with pytest.raises(KeyError, match="m2f_test_registry_missing"):
        build_evaluator(make_cfg(), "m2f_test_registry_missing")
    name = register("m2f_test_registry_unknown", [], evaluator_type="no_such_type")
    with pytest.raises(NotImplementedError, match="'no_such_type' of dataset"):
        build_evaluator(make_cfg(), name)


def test_panoptic_on_without_panoptic_json(make_cfg) -> None:
    name = register(
        "m2f_test_registry_no_panoptic_json",
        [],
        evaluator_type="coco_panoptic_seg",
        thing_dataset_id_to_contiguous_id={},
        stuff_dataset_id_to_contiguous_id={},
    )
    with pytest.raises(ValueError, match="no 'panoptic_json'"):
        build_evaluator(make_cfg(panoptic_on=True), name)


def test_register_types_adds_a_custom_type(make_cfg) -> None:
    def factory(cfg, dataset_name: str, output_dir: str) -> List[DatasetEvaluator]:
        return [FakeLVISEvaluator(dataset_name, output_dir)]

    EVALUATOR_REGISTRY.register_types("m2f_test_custom")(factory)
    try:
        name = register("m2f_test_registry_custom", [], evaluator_type="m2f_test_custom")
        evaluator = build_evaluator(make_cfg(), name, output_dir="out")
        assert isinstance(evaluator, FakeLVISEvaluator)
        assert evaluator.dataset_name == name and evaluator.output_dir == "out"
        with pytest.raises(AssertionError, match="m2f_test_custom"):  # no silent override
            EVALUATOR_REGISTRY.register_types("m2f_test_custom")(factory)
    finally:
        EVALUATOR_REGISTRY._obj_map.pop("m2f_test_custom")
    with pytest.raises(ValueError, match="at least one"):
        EVALUATOR_REGISTRY.register_types()
