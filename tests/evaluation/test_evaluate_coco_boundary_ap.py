"""tools/evaluate_coco_boundary_ap.py: boundary masks, Boundary IoU matching and Boundary AP."""

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from evaluation_samples import SAMPLES, encode_rle, load_tool
from pycocotools.coco import COCO
from scipy import ndimage

tool = load_tool("evaluate_coco_boundary_ap")
GT_JSON = SAMPLES / "coco_instances_golden" / "instances_val2014_100.json"


def scipy_boundary(mask: np.ndarray, dilation_ratio: float) -> np.ndarray:
    """Independent reference: mask minus its erosion by d px (3x3 steps), outside = background."""
    d = max(1, int(round(dilation_ratio * np.hypot(*mask.shape))))
    eroded = ndimage.binary_erosion(mask > 0, np.ones((3, 3)), iterations=d, border_value=0)
    return ((mask > 0) & ~eroded).astype(np.uint8)


@pytest.fixture(scope="module")
def coco_gt() -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(GT_JSON))


def perfect_results(coco_gt: COCO, img_ids: List[int], erode: int = 0) -> List[Dict[str, Any]]:
    """One detection per non-crowd ground truth: its own mask, optionally eroded by ``erode``."""
    results = []
    for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_ids, iscrowd=False)):
        mask = coco_gt.annToMask(ann)
        if erode:
            mask = ndimage.binary_erosion(mask, iterations=erode).astype(np.uint8)
            if not mask.any():
                continue
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "segmentation": encode_rle(mask),
                "score": 1.0,
            }
        )
    return results


def quiet_evaluate(*args: Any, **kwargs: Any):
    with contextlib.redirect_stdout(io.StringIO()):
        return tool.evaluate_boundary_ap(*args, **kwargs)


@pytest.mark.parametrize("shape, ratio", [((100, 100), 0.02), ((37, 61), 0.05), ((480, 640), 0.02)])
def test_mask_to_boundary_matches_scipy(shape, ratio: float) -> None:
    rng = np.random.default_rng(0)
    mask = ndimage.binary_opening(rng.random(shape) > 0.4, iterations=2).astype(np.uint8)
    mask[: shape[0] // 3, :] = 1  # touches the image border: its border side is boundary too
    boundary = tool.mask_to_boundary(mask, ratio)
    np.testing.assert_array_equal(boundary, scipy_boundary(mask, ratio))
    assert boundary.any() and not np.array_equal(boundary, mask)
    assert np.all(boundary <= mask)


def test_square_boundary_is_a_ring() -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[20:60, 30:70] = 1
    boundary = tool.mask_to_boundary(mask, 0.02)  # d = round(0.02 * 141.4) = 3
    inner = np.zeros_like(mask)
    inner[23:57, 33:67] = 1
    np.testing.assert_array_equal(boundary, mask - inner)


def test_iou_is_min_of_mask_and_boundary_iou(coco_gt: COCO) -> None:
    """One ground truth vs detections shifted right: the matching IoU is the smaller of mask IoU
    and Boundary IoU, each computed here with numpy."""
    img = coco_gt.loadImgs(coco_gt.getImgIds())[0]
    h, w = img["height"], img["width"]
    gt_mask = np.zeros((h, w), np.uint8)
    gt_mask[100:200, 100:260] = 1
    gt = {
        "images": [img],
        "categories": [{"id": 1, "name": "box"}],
        "annotations": [
            {
                "id": 1,
                "image_id": img["id"],
                "category_id": 1,
                "segmentation": encode_rle(gt_mask),
                "area": int(gt_mask.sum()),
                "bbox": [100, 100, 160, 100],
                "iscrowd": 0,
            }
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        tiny_gt = COCO()
        tiny_gt.dataset = gt
        tiny_gt.createIndex()
    shifts = [0, 4, 20, 40]
    results = []
    for i, shift in enumerate(shifts):
        dt_mask = np.roll(gt_mask, shift, axis=1)
        results.append(
            {
                "image_id": img["id"],
                "category_id": 1,
                "segmentation": encode_rle(dt_mask),
                "score": 1.0 - 0.1 * i,
            }
        )
    coco_eval = quiet_evaluate(tiny_gt, results)
    ious = coco_eval.ious[img["id"], 1][:, 0]
    b_gt = scipy_boundary(gt_mask, 0.02).astype(bool)
    mask_ious = []
    for iou, shift in zip(ious, shifts):
        dt_mask = np.roll(gt_mask, shift, axis=1).astype(bool)
        b_dt = scipy_boundary(dt_mask, 0.02).astype(bool)
        mask_iou = (gt_mask.astype(bool) & dt_mask).sum() / (gt_mask.astype(bool) | dt_mask).sum()
        boundary_iou = (b_gt & b_dt).sum() / (b_gt | b_dt).sum()
        assert iou == pytest.approx(min(mask_iou, boundary_iou), abs=1e-12)
        mask_ious.append(mask_iou)
    assert ious[2] < 0.5 < mask_ious[2]  # a 20 px shift: a mask match, not a boundary match


def test_perfect_predictions_give_boundary_ap_100(coco_gt: COCO) -> None:
    img_ids = sorted(coco_gt.getImgIds())[:8]
    coco_eval = quiet_evaluate(coco_gt, perfect_results(coco_gt, img_ids), img_ids=img_ids)
    assert coco_eval.stats[0] == pytest.approx(1.0)  # AP
    assert coco_eval.stats[8] == pytest.approx(1.0)  # AR100


def test_eroded_predictions_lose_more_boundary_ap_than_mask_ap(coco_gt: COCO) -> None:
    img_ids = sorted(coco_gt.getImgIds())[:8]
    results = perfect_results(coco_gt, img_ids, erode=2)
    mask_ap = quiet_evaluate(coco_gt, results, iou_type="segm", img_ids=img_ids).stats[0]
    boundary_ap = quiet_evaluate(coco_gt, results, img_ids=img_ids).stats[0]
    assert boundary_ap < mask_ap - 0.05  # measured: 0.328 vs 0.411


def test_main_on_json_files(coco_gt: COCO, tmp_path: Path) -> None:
    img_ids = sorted(coco_gt.getImgIds())[:3]
    gt = json.loads(GT_JSON.read_text())
    gt["images"] = [i for i in gt["images"] if i["id"] in img_ids]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in img_ids]
    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps(gt))
    results = perfect_results(coco_gt, img_ids)
    for r in results:
        r["bbox"] = [0, 0, 1, 1]  # ignored: areas come from the masks
    dt_file.write_text(json.dumps(results))
    stats = tool.main(["--gt-json-file", str(gt_file), "--dt-json-file", str(dt_file)])
    assert list(stats) == list(tool.STAT_NAMES)
    assert stats["AP"] == pytest.approx(1.0)
    with pytest.raises(SystemExit):
        tool.main(
            ["--gt-json-file", str(gt_file), "--dt-json-file", str(dt_file), "--iou-type", "bbox"]
        )
