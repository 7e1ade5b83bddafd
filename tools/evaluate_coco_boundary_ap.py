#!/usr/bin/env python
"""Boundary AP for COCO-format instance segmentation results.

Boundary IoU and Boundary AP are from Cheng et al., "Boundary IoU: Improving Object-Centric Image
Segmentation Evaluation", CVPR 2021. The official Mask2Former tool runs the authors'
``boundary_iou`` package (bowenc0221/boundary-iou-api), which is not on PyPI; this is a
re-implementation on pycocotools with the same definitions:

* the boundary of a mask is the mask minus its erosion by ``d`` pixels, ``d`` being
  ``dilation_ratio`` (default 0.02) times the image diagonal (at least 1); the image border
  counts as background, so masks cut by the border have a boundary there;
* a detection matches a non-crowd ground truth with ``min(mask IoU, boundary IoU)``; crowd ground
  truths keep the usual mask IoU; everything else is COCOeval ("segm") unchanged.

Usage::

    python tools/evaluate_coco_boundary_ap.py --gt-json-file instances_val2017.json \\
        --dt-json-file output/inference/coco_instances_results.json
"""

import argparse
import contextlib
import copy
import io
import json
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

logger = logging.getLogger("evaluate_coco_boundary_ap")

STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


def mask_to_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """Inner boundary band of a binary mask.

    Args:
        mask: [H, W] binary mask (any integer or bool dtype).
        dilation_ratio: band width as a fraction of the image diagonal.

    Returns:
        [H, W] uint8 mask of the pixels of ``mask`` within ``d`` pixels (chessboard distance) of
        the background or of the image border.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask_to_boundary expects a [H, W] mask, got shape {mask.shape}")
    mask = (mask > 0).astype(np.uint8)
    h, w = mask.shape
    dilation = max(1, int(round(dilation_ratio * np.sqrt(h**2 + w**2))))
    # Pad with background so that a mask truncated by the image border has a boundary there.
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)  # [H+2, W+2]
    eroded = cv2.erode(padded, np.ones((3, 3), dtype=np.uint8), iterations=dilation)
    return mask - eroded[1 : h + 1, 1 : w + 1]


def rle_boundary(rle: Dict[str, Any], dilation_ratio: float) -> Dict[str, Any]:
    """Boundary (see :func:`mask_to_boundary`) of an RLE-encoded mask, as RLE."""
    boundary = mask_to_boundary(mask_util.decode(rle), dilation_ratio)
    return mask_util.encode(np.asfortranarray(boundary))


class BoundaryCOCOeval(COCOeval):
    """COCOeval whose IoU is ``min(mask IoU, boundary IoU)`` (Boundary AP, Cheng et al. 2021).

    Runs as COCOeval with ``iouType="segm"``; ``summarize`` prints "segm" but reports Boundary
    AP. Boundaries are computed once per annotation and stored under its ``"boundary"`` key.
    """

    def __init__(self, coco_gt: COCO, coco_dt: COCO, dilation_ratio: float = 0.02) -> None:
        super().__init__(coco_gt, coco_dt, iouType="segm")
        self.dilation_ratio = dilation_ratio

    def _prepare(self) -> None:
        super()._prepare()  # converts every segmentation to RLE
        for anns in list(self._gts.values()) + list(self._dts.values()):
            for ann in anns:
                if "boundary" not in ann:
                    ann["boundary"] = rle_boundary(ann["segmentation"], self.dilation_ratio)

    def _selected(self, img_id: int, cat_id: int) -> Tuple[List[Dict], List[Dict]]:
        """Ground truths and detections in the order ``COCOeval.computeIoU`` uses."""
        p = self.params
        if p.useCats:
            gt, dt = self._gts[img_id, cat_id], self._dts[img_id, cat_id]
        else:
            gt = [g for c in p.catIds for g in self._gts[img_id, c]]
            dt = [d for c in p.catIds for d in self._dts[img_id, c]]
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        return gt, [dt[i] for i in order][: p.maxDets[-1]]

    def computeIoU(self, imgId: int, catId: int) -> Union[np.ndarray, List]:  # noqa: N802, N803
        """[D, G] matching IoUs of the (score-sorted) detections and ground truths."""
        mask_ious = super().computeIoU(imgId, catId)
        if len(mask_ious) == 0:
            return mask_ious
        gt, dt = self._selected(imgId, catId)
        iscrowd = [int(g["iscrowd"]) for g in gt]
        boundary_ious = np.asarray(
            mask_util.iou([d["boundary"] for d in dt], [g["boundary"] for g in gt], iscrowd)
        )
        ious = np.array(mask_ious)  # [D, G]
        regular = np.asarray(iscrowd) == 0
        ious[:, regular] = np.minimum(ious[:, regular], boundary_ious[:, regular])
        return ious


def evaluate_boundary_ap(
    coco_gt: COCO,
    results: List[Dict[str, Any]],
    iou_type: str = "boundary",
    dilation_ratio: float = 0.02,
    img_ids: Optional[Sequence[int]] = None,
) -> COCOeval:
    """Run (Boundary) AP evaluation of COCO-format segmentation results.

    Args:
        coco_gt: ground truth COCO API.
        results: COCO results (``image_id``, ``category_id``, ``segmentation``, ``score``); a
            ``bbox`` key is ignored so that areas come from the masks.
        iou_type: "boundary" (Boundary AP) or "segm" (mask AP).
        dilation_ratio: boundary width as a fraction of the image diagonal.
        img_ids: evaluate on these images only (default: all ground-truth images).

    Returns:
        The summarized COCOeval; ``stats`` holds the 12 numbers of :data:`STAT_NAMES`.
    """
    if iou_type not in ("boundary", "segm"):
        raise ValueError(f"iou_type must be 'boundary' or 'segm', got {iou_type!r}")
    if not results:
        raise ValueError("No detections to evaluate")
    results = [{k: v for k, v in r.items() if k != "bbox"} for r in copy.deepcopy(results)]
    coco_dt = coco_gt.loadRes(results)
    if iou_type == "boundary":
        coco_eval = BoundaryCOCOeval(coco_gt, coco_dt, dilation_ratio)
    else:
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="segm")
    if img_ids is not None:
        coco_eval.params.imgIds = list(img_ids)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Boundary AP of COCO instance segmentation.")
    parser.add_argument("--gt-json-file", required=True, help="COCO instances ground truth json")
    parser.add_argument("--dt-json-file", required=True, help="COCO-format results json")
    parser.add_argument("--iou-type", default="boundary", choices=["boundary", "segm"])
    parser.add_argument("--dilation-ratio", default=0.02, type=float)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Print and return the 12 COCO numbers (as fractions) keyed by :data:`STAT_NAMES`."""
    args = get_parser().parse_args(argv)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(args.gt_json_file)
    with open(args.dt_json_file) as f:
        results = json.load(f)
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        coco_eval = evaluate_boundary_ap(coco_gt, results, args.iou_type, args.dilation_ratio)
    logger.info(f"{args.iou_type} AP (dilation ratio {args.dilation_ratio}):\n{summary.getvalue()}")
    return dict(zip(STAT_NAMES, (float(s) for s in coco_eval.stats)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
