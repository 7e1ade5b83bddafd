"""Golden check of the instance evaluation path.

GT: 100 COCO val2014 images; predictions: the COCO API's own 734 fake detections. Given to the
evaluator built by ``build_evaluator`` in the form ``process`` stores them (per image, the
``instances_to_coco_json`` dicts with contiguous class ids), ``evaluate`` must reproduce the
published ``COCOeval.stats`` (``expected_stats.json``) for segm and bbox to 1e-6. A second test
feeds the same detections as model ``Instances`` through ``process`` and checks they reach that
path unchanged (masks bit-exact; boxes through detectron2's float32 ``Boxes``).
"""

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, BoxMode, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mask2former.evaluation import InstanceSegEvaluator, build_evaluator

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "samples" / "coco_instances_golden"
GT_JSON = GOLDEN / "instances_val2014_100.json"
DATASET = "m2f_test_coco_instances_golden"
NON_CONTIGUOUS_DATASET = "m2f_test_coco_instances_golden_non_contiguous"


def load_fake_results() -> List[Dict[str, Any]]:
    """The 734 fake detections with both their mask (RLE) and their box (XYWH)."""
    segm = json.loads((GOLDEN / "instances_val2014_fakesegm100_results.json").read_text())
    bbox = json.loads((GOLDEN / "instances_val2014_fakebbox100_results.json").read_text())
    assert len(segm) == len(bbox)
    for s, b in zip(segm, bbox):
        assert (s["image_id"], s["category_id"], s["score"]) == (
            b["image_id"],
            b["category_id"],
            b["score"],
        )
        s["bbox"] = b["bbox"]
    return segm


def results_to_model_outputs(
    results: List[Dict[str, Any]], images: List[Dict[str, Any]], to_contiguous: Dict[int, int]
) -> List[Dict[str, Instances]]:
    """COCO results -> per-image ``{"instances": Instances}`` as the model returns them."""
    by_image = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    outputs = []
    for image in images:
        h, w = image["height"], image["width"]
        dets = by_image[image["id"]]
        instances = Instances((h, w))
        masks = np.zeros((len(dets), h, w), dtype=bool)
        for i, d in enumerate(dets):
            masks[i] = mask_util.decode(d["segmentation"]).astype(bool)
        boxes = np.array([d["bbox"] for d in dets], dtype=np.float64).reshape(-1, 4)
        instances.pred_masks = torch.from_numpy(masks)
        instances.pred_boxes = Boxes(
            torch.from_numpy(BoxMode.convert(boxes, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS))
        )
        instances.scores = torch.tensor([d["score"] for d in dets], dtype=torch.float32)
        instances.pred_classes = torch.tensor(
            [to_contiguous[d["category_id"]] for d in dets], dtype=torch.int64
        )
        outputs.append({"instances": instances})
    return outputs


def coco_predictions(
    results: List[Dict[str, Any]], image_ids: List[int], to_contiguous: Dict[int, int]
) -> List[Dict[str, Any]]:
    """COCO results -> what ``COCOEvaluator.process`` stores after ``instances_to_coco_json``:
    one ``{"image_id", "instances": [result dicts with contiguous category_id]}`` per image."""
    by_image = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(dict(r, category_id=to_contiguous[r["category_id"]]))
    return [{"image_id": i, "instances": by_image[i]} for i in image_ids]


def spy_on_stats(evaluator: COCOEvaluator) -> Dict[str, np.ndarray]:
    """Record the full 12-number ``COCOeval.stats`` of each task the evaluator computes."""
    stats: Dict[str, np.ndarray] = {}
    derive = evaluator._derive_coco_results

    def spy(coco_eval, iou_type, class_names=None):
        stats[iou_type] = np.array(coco_eval.stats)
        return derive(coco_eval, iou_type, class_names=class_names)

    evaluator._derive_coco_results = spy
    return stats


def process_model_outputs(evaluator: COCOEvaluator) -> None:
    """Feed every GT image through ``process`` as a model's ``Instances`` outputs."""
    gt = json.loads(GT_JSON.read_text())
    meta = MetadataCatalog.get(evaluator._metadata.name)
    outputs = results_to_model_outputs(
        load_fake_results(), gt["images"], meta.thing_dataset_id_to_contiguous_id
    )
    evaluator.reset()
    for image, output in zip(gt["images"], outputs):
        inputs = [{"image_id": image["id"], "height": image["height"], "width": image["width"]}]
        evaluator.process(inputs, [output])


def expected_stats(task: str) -> np.ndarray:
    expected = json.loads((GOLDEN / "expected_stats.json").read_text())
    return np.array([expected[task][name] for name in expected["stat_names"]])


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("images")  # the evaluator never reads images


@pytest.fixture(scope="module")
def golden_dataset(image_root: Path) -> str:
    if DATASET not in DatasetCatalog.list():
        register_coco_instances(DATASET, {}, str(GT_JSON), str(image_root))
    DatasetCatalog.get(DATASET)  # as the test loader does: sets thing_dataset_id_to_contiguous_id
    return DATASET


def test_golden_stats_through_build_evaluator(
    make_cfg, golden_dataset: str, tmp_path: Path
) -> None:
    assert MetadataCatalog.get(golden_dataset).evaluator_type == "coco"
    evaluator = build_evaluator(make_cfg(), golden_dataset, output_dir=str(tmp_path))
    assert type(evaluator) is InstanceSegEvaluator  # detectron2's COCOEvaluator, 0 if empty
    assert isinstance(evaluator, COCOEvaluator)
    stats = spy_on_stats(evaluator)
    gt = json.loads(GT_JSON.read_text())
    to_contiguous = MetadataCatalog.get(golden_dataset).thing_dataset_id_to_contiguous_id
    evaluator.reset()
    evaluator._predictions = coco_predictions(
        load_fake_results(), [image["id"] for image in gt["images"]], to_contiguous
    )
    results = evaluator.evaluate()

    assert set(results) == {"bbox", "segm"}
    for task in ("segm", "bbox"):
        np.testing.assert_allclose(stats[task], expected_stats(task), rtol=0, atol=1e-6)
        assert results[task]["AP"] == pytest.approx(100 * expected_stats(task)[0], abs=1e-4)
    # The dumped results map classes back to the dataset's (non-contiguous) COCO ids.
    dumped = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert sorted(d["category_id"] for d in dumped) == sorted(
        d["category_id"] for d in load_fake_results()
    )


def test_model_outputs_reach_the_golden_path(make_cfg, golden_dataset: str, tmp_path: Path) -> None:
    """``process`` on model ``Instances`` stores the same COCO results (masks bit-exact; boxes
    and scores pass through detectron2's float32 tensors) and reproduces the golden segm stats."""
    evaluator = build_evaluator(make_cfg(), golden_dataset, output_dir=str(tmp_path))
    stats = spy_on_stats(evaluator)
    process_model_outputs(evaluator)
    gt = json.loads(GT_JSON.read_text())
    to_contiguous = MetadataCatalog.get(golden_dataset).thing_dataset_id_to_contiguous_id
    want = coco_predictions(
        load_fake_results(), [image["id"] for image in gt["images"]], to_contiguous
    )
    assert [p["image_id"] for p in evaluator._predictions] == [p["image_id"] for p in want]
    for got_image, want_image in zip(evaluator._predictions, want):
        assert len(got_image["instances"]) == len(want_image["instances"])
        for got, ref in zip(got_image["instances"], want_image["instances"]):
            assert got["category_id"] == ref["category_id"]
            assert got["segmentation"] == ref["segmentation"]
            assert got["score"] == pytest.approx(ref["score"], abs=1e-7)
            np.testing.assert_allclose(got["bbox"], ref["bbox"], rtol=0, atol=1e-4)
    evaluator.evaluate()
    np.testing.assert_allclose(stats["segm"], expected_stats("segm"), rtol=0, atol=1e-6)
    # float32 boxes move a few IoUs/areas across thresholds: bbox AP agrees to ~1e-3 only.
    np.testing.assert_allclose(stats["bbox"], expected_stats("bbox"), rtol=0, atol=2e-3)


@pytest.fixture(scope="module")
def non_contiguous_dataset() -> str:
    """The golden GT as an ADE20K-style instance dataset: thing i has contiguous id 2 i + 1."""
    if NON_CONTIGUOUS_DATASET not in DatasetCatalog.list():
        gt = json.loads(GT_JSON.read_text())
        cat_ids = sorted(c["id"] for c in gt["categories"])
        DatasetCatalog.register(NON_CONTIGUOUS_DATASET, lambda: [])
        MetadataCatalog.get(NON_CONTIGUOUS_DATASET).set(
            json_file=str(GT_JSON),
            evaluator_type="ade20k_instance",
            thing_dataset_id_to_contiguous_id={cat: 2 * i + 1 for i, cat in enumerate(cat_ids)},
            thing_classes=[f"class{cat}" for cat in cat_ids],
        )
    return NON_CONTIGUOUS_DATASET


def test_instance_seg_evaluator_with_non_contiguous_ids(
    make_cfg, non_contiguous_dataset: str, tmp_path: Path
) -> None:
    """ADE20K/Mapillary style: contiguous thing ids are a sparse subset of all class ids."""
    gt = json.loads(GT_JSON.read_text())
    evaluator = build_evaluator(make_cfg(), non_contiguous_dataset, output_dir=str(tmp_path))
    assert type(evaluator) is InstanceSegEvaluator
    stats = spy_on_stats(evaluator)
    img_ids = sorted(image["id"] for image in gt["images"])[:20]
    to_contiguous = MetadataCatalog.get(non_contiguous_dataset).thing_dataset_id_to_contiguous_id
    evaluator.reset()
    evaluator._predictions = coco_predictions(load_fake_results(), img_ids, to_contiguous)
    evaluator.evaluate(img_ids=img_ids)

    # Independent reference: pycocotools on the original results over the same images.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(GT_JSON))
        for task in ("segm", "bbox"):
            results = load_fake_results()
            if task == "segm":
                for r in results:
                    r.pop("bbox")
            coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), task)
            coco_eval.params.imgIds = img_ids
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
            np.testing.assert_allclose(stats[task], coco_eval.stats, rtol=0, atol=1e-12)


def test_instance_seg_evaluator_rejects_unknown_class(
    non_contiguous_dataset: str, tmp_path: Path
) -> None:
    evaluator = InstanceSegEvaluator(non_contiguous_dataset, output_dir=str(tmp_path))
    evaluator.reset()
    instances = Instances((10, 10))
    instances.pred_masks = torch.ones(1, 10, 10, dtype=torch.bool)
    instances.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    instances.scores = torch.ones(1)
    instances.pred_classes = torch.tensor([2])  # even: not a thing id of this dataset
    evaluator.process([{"image_id": 42}], [{"instances": instances}])
    with pytest.raises(ValueError, match="class 2"):
        evaluator.evaluate()
