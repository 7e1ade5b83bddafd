"""Evaluation with nothing to score gives well-defined metrics (0, not NaN, no crash), through
``build_evaluator`` and the registry: zero predictions, a model that predicts only "no object"
(its post-processing returns empty instances / an all-VOID panoptic map), no image processed, and
a category group (things or stuff) absent from a panoptic dataset (panopticapi divides by zero).

Real samples: the COCO val2014 golden ground truth (100 images), the 2-image COCO panoptic
sample and the 3-image ADE20K sample."""

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances, register_coco_panoptic
from detectron2.structures import Boxes, Instances
from panopticapi.utils import id2rgb, rgb2id
from PIL import Image

from mask2former.evaluation import build_evaluator
from mask2former.modeling.postprocessing import (
    instance_inference,
    panoptic_inference,
    semantic_inference,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
GOLDEN_GT = SAMPLES / "coco_instances_golden" / "instances_val2014_100.json"
PANOPTIC = SAMPLES / "coco_panoptic"
HEADLINE = ("AP", "AP50", "AP75", "APs", "APm", "APl")
PANOPTIC_METRICS = ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st")
NUM_QUERIES = 8


def no_object_outputs(num_classes: int, height: int, width: int) -> Tuple[torch.Tensor, ...]:
    """``mask_cls [Q, K+1]`` where every query is confidently "no object", and negative mask
    logits ``[Q, H, W]``: the raw outputs of a model that predicts only "no object"."""
    mask_cls = torch.zeros(NUM_QUERIES, num_classes + 1)
    mask_cls[:, -1] = 20.0
    return mask_cls, torch.full((NUM_QUERIES, height, width), -5.0)


def empty_instances(height: int, width: int) -> Instances:
    instances = Instances((height, width))
    instances.pred_masks = torch.zeros(0, height, width)
    instances.pred_boxes = Boxes(torch.zeros(0, 4))
    instances.scores = torch.zeros(0)
    instances.pred_classes = torch.zeros(0, dtype=torch.int64)
    return instances


def assert_all_zero(results: Dict[str, float], names) -> None:
    for name in names:
        assert results[name] == 0.0, (name, results[name])


# COCO instances (AP)


@pytest.fixture(scope="module")
def coco_instances(tmp_path_factory: pytest.TempPathFactory) -> str:
    name = "m2f_test_empty_predictions_coco_instances"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, str(GOLDEN_GT), str(tmp_path_factory.mktemp("images")))
    DatasetCatalog.get(name)  # sets thing_dataset_id_to_contiguous_id, as the test loader does
    return name


def golden_images() -> List[Dict[str, Any]]:
    return json.loads(GOLDEN_GT.read_text())["images"]


def per_class_expectation(results: Dict[str, float], dataset: str) -> None:
    """Per-class AP: 0 for a class with ground truth, NaN (COCO's "undefined") for the others."""
    gt = json.loads(GOLDEN_GT.read_text())
    with_gt = {a["category_id"] for a in gt["annotations"]}
    meta = MetadataCatalog.get(dataset)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    assert len(meta.thing_classes) == len(names)
    for category_id, name in names.items():
        value = results[f"AP-{name}"]
        assert value == 0.0 if category_id in with_gt else math.isnan(value), (name, value)


def test_coco_zero_predictions_score_zero(make_cfg, coco_instances: str, tmp_path: Path) -> None:
    evaluator = build_evaluator(make_cfg(), coco_instances, output_dir=str(tmp_path))
    evaluator.reset()
    for image in golden_images():
        inputs = {"image_id": image["id"], "height": image["height"], "width": image["width"]}
        evaluator.process([inputs], [{"instances": empty_instances(8, 8)}])
    results = evaluator.evaluate()
    assert sorted(results) == ["bbox", "segm"]
    for task in ("bbox", "segm"):
        assert_all_zero(results[task], HEADLINE)  # the 100 images have objects of every size
        per_class_expectation(results[task], coco_instances)


def test_coco_no_image_processed_scores_zero(make_cfg, coco_instances: str) -> None:
    evaluator = build_evaluator(make_cfg(), coco_instances, output_dir=None)
    evaluator.reset()
    results = evaluator.evaluate()
    assert sorted(results) == ["bbox", "segm"]
    for task in ("bbox", "segm"):
        assert_all_zero(results[task], HEADLINE)


def test_coco_only_no_object_model_scores_zero(make_cfg, coco_instances: str) -> None:
    evaluator = build_evaluator(make_cfg(), coco_instances, output_dir=None)
    evaluator.reset()
    num_classes = len(MetadataCatalog.get(coco_instances).thing_classes)
    for image in golden_images()[:10]:
        h, w = image["height"] // 8, image["width"] // 8
        mask_cls, mask_pred = no_object_outputs(num_classes, h, w)
        instances = instance_inference(
            mask_cls,
            mask_pred,
            num_classes=num_classes,
            test_topk_per_image=20,
            thing_ids=None,
            panoptic_on=False,
        )
        assert (instances.scores < 1e-6).all() and not instances.pred_masks.any()
        evaluator.process(
            [{"image_id": image["id"], "height": h, "width": w}], [{"instances": instances}]
        )
    results = evaluator.evaluate()
    for task in ("bbox", "segm"):
        assert_all_zero(results[task], HEADLINE)


# COCO panoptic (PQ)


def register_panoptic(name: str, json_file: Path, panoptic_root: Path) -> str:
    if name not in DatasetCatalog.list():
        categories = json.loads(json_file.read_text())["categories"]
        register_coco_panoptic(
            name,
            {
                "thing_classes": [c["name"] for c in categories if c["isthing"]],
                "stuff_classes": [c["name"] for c in categories],
                "thing_dataset_id_to_contiguous_id": {
                    c["id"]: i for i, c in enumerate(categories) if c["isthing"]
                },
                "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
            },
            str(PANOPTIC / "images"),
            str(panoptic_root),
            str(json_file),
        )
    return name


@pytest.fixture(scope="module")
def coco_panoptic() -> str:
    return register_panoptic(
        "m2f_test_empty_predictions_coco_panoptic",
        PANOPTIC / "panoptic_examples.json",
        PANOPTIC / "panoptic_examples",
    )


@pytest.fixture(scope="module")
def things_only_panoptic(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The COCO panoptic sample with its stuff segments made VOID: no stuff category at all."""
    root = tmp_path_factory.mktemp("things_only")
    content = json.loads((PANOPTIC / "panoptic_examples.json").read_text())
    things = {c["id"] for c in content["categories"] if c["isthing"]}
    for annotation in content["annotations"]:
        png = PANOPTIC / "panoptic_examples" / annotation["file_name"]
        ids = rgb2id(np.asarray(Image.open(png), dtype=np.uint32))
        stuff = [s for s in annotation["segments_info"] if s["category_id"] not in things]
        for segment in stuff:
            ids[ids == segment["id"]] = 0
        annotation["segments_info"] = [
            s for s in annotation["segments_info"] if s["category_id"] in things
        ]
        Image.fromarray(id2rgb(ids)).save(root / annotation["file_name"])
    json_file = root / "panoptic_things_only.json"
    json_file.write_text(json.dumps(content))
    return register_panoptic("m2f_test_empty_predictions_things_only", json_file, root)


def panoptic_outputs(dataset: str, no_object: bool) -> List[Tuple[Dict, Dict]]:
    """(input, output) per image: the post-processing of a model that predicts only "no object"
    (``no_object``), else the ground truth as the prediction."""
    meta = MetadataCatalog.get(dataset)
    pairs = []
    for record in DatasetCatalog.get(dataset):
        ids = rgb2id(np.asarray(Image.open(record["pan_seg_file_name"]), dtype=np.uint32))
        if no_object:
            mask_cls, mask_pred = no_object_outputs(len(meta.stuff_classes), *ids.shape)
            panoptic = panoptic_inference(
                mask_cls,
                mask_pred,
                num_classes=len(meta.stuff_classes),
                object_mask_threshold=0.8,
                overlap_threshold=0.8,
                thing_ids=set(meta.thing_dataset_id_to_contiguous_id.values()),
            )
            assert not panoptic[0].any() and panoptic[1] == []  # all VOID
        else:
            segments = [
                {"id": s["id"], "category_id": s["category_id"], "isthing": bool(s["isthing"])}
                for s in record["segments_info"]
            ]
            panoptic = (torch.from_numpy(ids.astype(np.int32)), segments)
        inputs = {"file_name": record["file_name"], "image_id": record["image_id"]}
        pairs.append((inputs, {"panoptic_seg": panoptic}))
    return pairs


def evaluate_panoptic(make_cfg, dataset: str, pairs, tmp_path: Path) -> Dict[str, float]:
    evaluator = build_evaluator(
        make_cfg(semantic_on=False, panoptic_on=True), dataset, str(tmp_path)
    )
    evaluator.reset()
    for inputs, output in pairs:
        evaluator.process([inputs], [output])
    return evaluator.evaluate()["panoptic_seg"]


def test_panoptic_only_no_object_scores_zero(make_cfg, coco_panoptic: str, tmp_path: Path) -> None:
    pairs = panoptic_outputs(coco_panoptic, no_object=True)
    assert_all_zero(evaluate_panoptic(make_cfg, coco_panoptic, pairs, tmp_path), PANOPTIC_METRICS)


def test_panoptic_absent_stuff_group_scores_zero(
    make_cfg, things_only_panoptic: str, tmp_path: Path
) -> None:
    """panopticapi's average over the stuff categories divides by zero here."""
    perfect = evaluate_panoptic(
        make_cfg, things_only_panoptic, panoptic_outputs(things_only_panoptic, False), tmp_path
    )
    for name in ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th"):
        assert perfect[name] == pytest.approx(100.0), name
    assert_all_zero(perfect, ("PQ_st", "SQ_st", "RQ_st"))
    nothing = evaluate_panoptic(
        make_cfg, things_only_panoptic, panoptic_outputs(things_only_panoptic, True), tmp_path
    )
    assert_all_zero(nothing, PANOPTIC_METRICS)


def test_panoptic_no_image_processed_scores_zero(
    make_cfg, coco_panoptic: str, tmp_path: Path
) -> None:
    assert_all_zero(evaluate_panoptic(make_cfg, coco_panoptic, [], tmp_path), PANOPTIC_METRICS)


def test_panoptic_image_without_prediction_is_still_an_error(
    make_cfg, coco_panoptic: str, tmp_path: Path
) -> None:
    pairs = panoptic_outputs(coco_panoptic, no_object=True)[:1]
    with pytest.raises(ValueError, match="No panoptic prediction for 1 image"):
        evaluate_panoptic(make_cfg, coco_panoptic, pairs, tmp_path)


# Semantic segmentation (mIoU)


def test_semantic_no_image_processed_scores_zero(
    make_cfg, ade_dataset: str, tmp_path: Path
) -> None:
    evaluator = build_evaluator(make_cfg(semantic_on=True), ade_dataset, str(tmp_path))
    evaluator.reset()
    results = evaluator.evaluate()["sem_seg"]
    assert results and all(value == 0.0 for value in results.values())
    assert torch.load(tmp_path / "sem_seg_evaluation.pth") == results


def test_semantic_only_no_object_model_is_finite(make_cfg, ade_dataset: str) -> None:
    evaluator = build_evaluator(make_cfg(semantic_on=True), ade_dataset, None)
    evaluator.reset()
    num_classes = len(MetadataCatalog.get(ade_dataset).stuff_classes)
    for record in DatasetCatalog.get(ade_dataset):
        h, w = np.asarray(Image.open(record["sem_seg_file_name"])).shape
        sem_seg = semantic_inference(*no_object_outputs(num_classes, h, w))  # [K, H, W]
        assert sem_seg.max() < 1e-6
        evaluator.process([{"file_name": record["file_name"]}], [{"sem_seg": sem_seg}])
    results = evaluator.evaluate()["sem_seg"]
    for name in ("mIoU", "fwIoU", "mACC", "pACC"):
        assert math.isfinite(results[name]) and 0 <= results[name] < 100, name
