"""COCO panoptic ground truth scored against itself through the built evaluator gives PQ 100.

The sample (2 real COCO val2017 images, 50 segments incl. 3 crowd) is registered the standard
detectron2 way (``register_coco_panoptic``), has both things and stuff (panopticapi divides by
zero when a group is absent), and its PNGs are converted to what the model returns:
``panoptic_seg = (ids [H, W] int32, segments_info with contiguous category_id and isthing)``.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_panoptic
from detectron2.evaluation import COCOPanopticEvaluator
from detectron2.structures import BitMasks, Instances
from evaluation_samples import encode_rle, one_hot_scores
from panopticapi.utils import rgb2id
from PIL import Image

from mask2former.evaluation import (
    InstanceSegEvaluator,
    PanopticSegEvaluator,
    SemanticSegEvaluator,
    build_evaluator,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "coco_panoptic"
PANOPTIC_JSON = SAMPLE / "panoptic_examples.json"
DATASET = "m2f_test_coco_panoptic_sample"


def panoptic_metadata(categories: List[Dict[str, Any]]) -> Dict[str, Any]:
    """detectron2's "standard" COCO panoptic metadata: one contiguous id per category."""
    return {
        "thing_classes": [c["name"] for c in categories if c["isthing"]],
        "stuff_classes": [c["name"] for c in categories],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(categories) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
    }


@pytest.fixture(scope="module")
def panoptic_dataset() -> str:
    if DATASET not in DatasetCatalog.list():
        categories = json.loads(PANOPTIC_JSON.read_text())["categories"]
        register_coco_panoptic(
            DATASET,
            panoptic_metadata(categories),
            str(SAMPLE / "images"),
            str(SAMPLE / "panoptic_examples"),
            str(PANOPTIC_JSON),
        )
    return DATASET


def ground_truth_as_predictions(
    dataset_name: str, drop: Optional[Tuple[int, int]] = None
) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """(input, output) pairs whose ``panoptic_seg`` is the ground truth, optionally without the
    segment ``drop = (image_id, segment_id)`` (its pixels become VOID, id 0)."""
    pairs = []
    for record in DatasetCatalog.get(dataset_name):
        ids = rgb2id(np.asarray(Image.open(record["pan_seg_file_name"]), dtype=np.uint32))
        drop_segment = drop[1] if drop is not None and drop[0] == record["image_id"] else None
        segments_info = [
            {"id": s["id"], "category_id": s["category_id"], "isthing": bool(s["isthing"])}
            for s in record["segments_info"]
            if s["id"] != drop_segment
        ]
        if drop_segment is not None:
            ids = np.where(ids == drop_segment, 0, ids)
        inputs = {"file_name": record["file_name"], "image_id": record["image_id"]}
        output = {"panoptic_seg": (torch.from_numpy(ids.astype(np.int32)), segments_info)}
        pairs.append((inputs, output))
    return pairs


def evaluate(evaluator: COCOPanopticEvaluator, pairs) -> Dict[str, float]:
    evaluator.reset()
    for inputs, output in pairs:
        evaluator.process([inputs], [output])
    return evaluator.evaluate()["panoptic_seg"]


def test_sample_has_things_stuff_and_crowd(panoptic_dataset: str) -> None:
    segments = [s for r in DatasetCatalog.get(panoptic_dataset) for s in r["segments_info"]]
    assert len(segments) == 50
    assert {bool(s["isthing"]) for s in segments} == {True, False}
    assert sum(s["iscrowd"] for s in segments) == 3  # data README says 2; the json has 3


def test_ground_truth_scores_pq_100(make_cfg, panoptic_dataset: str, tmp_path: Path) -> None:
    cfg = make_cfg(semantic_on=False, panoptic_on=True)
    evaluator = build_evaluator(cfg, panoptic_dataset, output_dir=str(tmp_path))
    assert type(evaluator) is PanopticSegEvaluator
    assert isinstance(evaluator, COCOPanopticEvaluator)
    res = evaluate(evaluator, ground_truth_as_predictions(panoptic_dataset))
    for key in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st"):
        assert res[key] == pytest.approx(100.0, abs=1e-9), key
    # Predicted category ids were mapped back to the dataset's ids in the dumped json.
    dumped = json.loads((tmp_path / "predictions.json").read_text())["annotations"]
    gt = json.loads(PANOPTIC_JSON.read_text())["annotations"]
    assert sorted(s["category_id"] for a in dumped for s in a["segments_info"]) == sorted(
        s["category_id"] for a in gt for s in a["segments_info"]
    )


def test_missing_segment_lowers_pq_as_expected(
    make_cfg, panoptic_dataset: str, tmp_path: Path
) -> None:
    records = DatasetCatalog.get(panoptic_dataset)
    non_crowd = [s for r in records for s in r["segments_info"] if not s["iscrowd"]]
    dropped = records[0]["segments_info"][0]
    assert not dropped["iscrowd"]
    n_same_class = sum(s["category_id"] == dropped["category_id"] for s in non_crowd)
    categories: Set[int] = {s["category_id"] for s in non_crowd}
    # The dropped segment is a false negative; every other segment is matched with IoU 1.
    pq_dropped_class = (n_same_class - 1) / (n_same_class - 1 + 0.5)
    expected_pq = 100 * (len(categories) - 1 + pq_dropped_class) / len(categories)

    cfg = make_cfg(semantic_on=False, panoptic_on=True)
    evaluator = build_evaluator(cfg, panoptic_dataset, output_dir=str(tmp_path))
    res = evaluate(
        evaluator,
        ground_truth_as_predictions(panoptic_dataset, (records[0]["image_id"], dropped["id"])),
    )
    assert res["PQ"] == pytest.approx(expected_pq, abs=1e-9)
    assert res["SQ"] == pytest.approx(100.0, abs=1e-9)
    assert MetadataCatalog.get(panoptic_dataset).evaluator_type == "coco_panoptic_seg"


def derived_ground_truth(root: Path) -> Tuple[str, str]:
    """Semantic PNGs (contiguous ids, 255 = VOID) and a things-only COCO instances json derived
    from the panoptic ground truth, as the official preparation scripts derive them."""
    panoptic = json.loads(PANOPTIC_JSON.read_text())
    to_contiguous = panoptic_metadata(panoptic["categories"])["stuff_dataset_id_to_contiguous_id"]
    things = {c["id"] for c in panoptic["categories"] if c["isthing"]}
    sem_seg_root = root / "panoptic_semseg"
    sem_seg_root.mkdir(parents=True)
    annotations = []
    for ann in panoptic["annotations"]:
        ids = rgb2id(np.asarray(Image.open(SAMPLE / "panoptic_examples" / ann["file_name"])))
        semantic = np.full(ids.shape, 255, dtype=np.uint8)
        for s in ann["segments_info"]:
            mask = ids == s["id"]
            semantic[mask] = to_contiguous[s["category_id"]]
            if s["category_id"] in things:
                rle = encode_rle(mask)
                annotations.append(
                    {
                        "id": len(annotations) + 1,  # COCOeval never matches an id of 0
                        "image_id": ann["image_id"],
                        "category_id": s["category_id"],
                        "segmentation": rle,
                        "area": int(mask.sum()),
                        "bbox": [float(v) for v in mask_util.toBbox(rle)],
                        "iscrowd": s["iscrowd"],
                    }
                )
        Image.fromarray(semantic).save(sem_seg_root / ann["file_name"])
    instances = {
        "images": panoptic["images"],
        "annotations": annotations,
        "categories": [c for c in panoptic["categories"] if c["isthing"]],
    }
    instances_json = root / "instances.json"
    instances_json.write_text(json.dumps(instances))
    return str(sem_seg_root), str(instances_json)


def test_pq_miou_and_ap_in_one_pass(make_cfg, tmp_path: Path) -> None:
    """COCO panoptic "with_sem_seg" style dataset: one pass reports PQ, mIoU and AP."""
    name = "m2f_test_coco_panoptic_sample_with_sem_seg"
    if name not in DatasetCatalog.list():
        sem_seg_root, instances_json = derived_ground_truth(tmp_path / "gt")
        categories = json.loads(PANOPTIC_JSON.read_text())["categories"]
        register_coco_panoptic(
            name,
            panoptic_metadata(categories),
            str(SAMPLE / "images"),
            str(SAMPLE / "panoptic_examples"),
            str(PANOPTIC_JSON),
            instances_json,
        )
        records = DatasetCatalog.get(name)
        for r in records:
            r["sem_seg_file_name"] = str(Path(sem_seg_root) / Path(r["pan_seg_file_name"]).name)
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).set(sem_seg_root=sem_seg_root)

    cfg = make_cfg(semantic_on=True, instance_on=True, panoptic_on=True)
    evaluator = build_evaluator(cfg, name, output_dir=str(tmp_path / "out"))
    assert [type(e) for e in evaluator._evaluators] == [
        PanopticSegEvaluator,
        SemanticSegEvaluator,
        InstanceSegEvaluator,
    ]
    num_classes = len(MetadataCatalog.get(name).stuff_classes)
    evaluator.reset()
    pairs = ground_truth_as_predictions(name)
    for (inputs, output), record in zip(pairs, DatasetCatalog.get(name)):
        semantic = np.asarray(Image.open(record["sem_seg_file_name"]))  # [H, W]
        output["sem_seg"] = one_hot_scores(semantic, num_classes)  # [K, H, W]
        output["instances"] = instances_from_segments(record, output["panoptic_seg"][0])
        height, width = semantic.shape
        evaluator.process([dict(inputs, height=height, width=width)], [output])
    results = evaluator.evaluate()

    assert results["panoptic_seg"]["PQ"] == pytest.approx(100.0)
    assert results["sem_seg"]["mIoU"] == pytest.approx(100.0)
    assert results["sem_seg"]["pACC"] == pytest.approx(100.0)
    assert results["segm"]["AP"] == pytest.approx(100.0)
    assert results["bbox"]["AP"] == pytest.approx(100.0)


def instances_from_segments(record: Dict[str, Any], ids: torch.Tensor) -> Instances:
    """Model-style ``Instances`` of the non-crowd thing segments (score 1, boxes from masks)."""
    segments = [s for s in record["segments_info"] if s["isthing"] and not s["iscrowd"]]
    instances = Instances(tuple(ids.shape))
    masks = torch.stack([ids == s["id"] for s in segments])  # [N, H, W]
    instances.pred_masks = masks
    instances.pred_boxes = BitMasks(masks).get_bounding_boxes()
    instances.scores = torch.ones(len(segments))
    instances.pred_classes = torch.tensor([s["category_id"] for s in segments])
    return instances
