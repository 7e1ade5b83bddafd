#!/usr/bin/env python
"""Panoptic Quality (PQ) of semantic segmentation predictions, as in the official Mask2Former tool.

Each class present in an image is one segment, in the ground truth as in the prediction; segments
are matched as in the COCO panoptic API (cocodataset/panopticapi, Kirillov et al., "Panoptic
Segmentation", CVPR 2019): a match needs IoU > 0.5, the union excludes the prediction's pixels on
VOID (ignored) ground truth, and an unmatched predicted segment lying more than half on VOID is
not a false positive. All classes are "stuff". The mIoU printed beside it follows the official
tool too: IoU averaged over the classes present in the ground truth or the prediction.

Input: ``sem_seg_predictions.json`` as written by detectron2's ``SemSegEvaluator`` (one RLE per
image and predicted class, ``category_id`` in dataset ids), and a registered semantic dataset
whose records give ``sem_seg_file_name``.

Usage::

    python tools/evaluate_pq_for_semantic_segmentation.py --dataset-name ade20k_sem_seg_val \\
        --json-file output/inference/sem_seg_predictions.json
"""

import argparse
import json
import logging
import os
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from panopticapi.evaluation import PQStat

logger = logging.getLogger("evaluate_pq_for_semantic_segmentation")


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[K+1, K+1] pixel counts, rows = ground truth, columns = prediction; index K = VOID.

    Args:
        gt, pred: [H, W] labels in ``[0, K)``, or ``K`` for VOID (ignored / not predicted).
    """
    index = (num_classes + 1) * gt.reshape(-1).astype(np.int64) + pred.reshape(-1)  # [H*W]
    counts = np.bincount(index, minlength=(num_classes + 1) ** 2)
    return counts.reshape(num_classes + 1, num_classes + 1)


def pq_stat_single_image(conf: np.ndarray) -> PQStat:
    """PQ statistics (tp, fp, fn, summed IoU per class) of one image from its confusion matrix.

    Args:
        conf: [K+1, K+1] confusion matrix of the image (see :func:`confusion_matrix`).
    """
    num_classes = conf.shape[0] - 1
    inter = np.diag(conf)[:num_classes].astype(np.float64)  # [K]
    gt_area = conf[:num_classes].sum(axis=1)  # [K] ground truth pixels of each class
    pred_area = conf[:, :num_classes].sum(axis=0)  # [K] predicted pixels, VOID ground truth incl.
    pred_on_void = conf[num_classes, :num_classes]  # [K]
    union = pred_area + gt_area - inter - pred_on_void  # [K]
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    matched = (gt_area > 0) & (pred_area > 0) & (iou > 0.5)

    pq_stat = PQStat()
    for c in np.flatnonzero(matched):
        pq_stat[int(c)].tp += 1
        pq_stat[int(c)].iou += float(iou[c])
    for c in np.flatnonzero((gt_area > 0) & ~matched):
        pq_stat[int(c)].fn += 1
    # An unmatched predicted segment mostly on VOID ground truth is ignored.
    mostly_void = pred_on_void > 0.5 * pred_area
    for c in np.flatnonzero((pred_area > 0) & ~matched & ~mostly_void):
        pq_stat[int(c)].fp += 1
    return pq_stat


def predictions_to_label_map(
    annotations: Iterable[Mapping[str, Any]],
    shape: Tuple[int, int],
    dataset_id_to_contiguous_id: Optional[Mapping[int, int]],
    void_label: int,
) -> np.ndarray:
    """Paint the per-class RLE predictions of one image into a [H, W] int64 label map.

    Pixels no prediction covers get ``void_label``. Category ids are mapped to contiguous ids
    when ``dataset_id_to_contiguous_id`` is given.
    """
    label_map = np.full(shape, void_label, dtype=np.int64)
    for ann in annotations:
        category_id = ann["category_id"]
        if dataset_id_to_contiguous_id is not None:
            if category_id not in dataset_id_to_contiguous_id:
                raise ValueError(f"Predicted category_id {category_id} is not in the dataset")
            category_id = dataset_id_to_contiguous_id[category_id]
        mask = mask_util.decode(ann["segmentation"])
        if mask.shape != shape:
            raise ValueError(f"Prediction of shape {mask.shape} for ground truth of shape {shape}")
        label_map[mask > 0] = category_id
    return label_map


def evaluate_semantic_pq(
    pairs: Iterable[Tuple[np.ndarray, np.ndarray]], num_classes: int, ignore_label: int
) -> Dict[str, Any]:
    """PQ, SQ, RQ and mIoU (in %) of semantic predictions.

    Args:
        pairs: (ground truth, prediction) [H, W] integer label maps per image; labels in
            ``[0, num_classes)``; ``ignore_label`` marks VOID ground truth (and, in predictions,
            pixels without prediction).
        num_classes: number of classes K.
        ignore_label: the dataset's ignore label.

    Returns:
        ``{"PQ", "SQ", "RQ", "mIoU": float, "n": classes in the PQ average,
        "per_class": {class: {"pq", "sq", "rq"}}}``.
    """
    pq_stat = PQStat()
    total = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for gt, pred in pairs:
        if gt.shape != pred.shape:
            raise ValueError(f"Ground truth {gt.shape} and prediction {pred.shape} differ")
        gt = np.where(gt == ignore_label, num_classes, gt)
        pred = np.where(pred == ignore_label, num_classes, pred)
        for labels, what in ((gt, "ground truth"), (pred, "prediction")):
            if labels.min() < 0 or labels.max() > num_classes:
                raise ValueError(f"{what} has labels outside [0, {num_classes}) and {ignore_label}")
        conf = confusion_matrix(gt, pred, num_classes)
        pq_stat += pq_stat_single_image(conf)
        total += conf

    categories = {c: {"id": c, "isthing": 0} for c in range(num_classes)}
    if not any(s.tp + s.fp + s.fn for s in pq_stat.pq_per_cat.values()):
        raise ValueError("No ground truth or predicted segment at all: PQ is undefined")
    average, per_class = pq_stat.pq_average(categories, isthing=None)

    tp = np.diag(total)[:num_classes].astype(np.float64)
    pos_gt = total[:num_classes, :num_classes].sum(axis=1).astype(np.float64)
    pos_pred = total[:num_classes, :num_classes].sum(axis=0).astype(np.float64)
    present = pos_gt > 0
    iou = tp[present] / (pos_gt + pos_pred - tp)[present]
    miou = iou.sum() / np.count_nonzero(pos_gt + pos_pred > 0)
    return {
        "PQ": 100 * average["pq"],
        "SQ": 100 * average["sq"],
        "RQ": 100 * average["rq"],
        "n": average["n"],
        "mIoU": 100 * float(miou),
        "per_class": per_class,
    }


def load_predictions(json_file: str) -> Dict[str, List[Dict[str, Any]]]:
    """SemSegEvaluator's predictions json -> annotations per image file stem."""
    with open(json_file) as f:
        predictions = json.load(f)
    per_image = defaultdict(list)
    for pred in predictions:
        per_image[_stem(pred["file_name"])].append(pred)
    return per_image


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate PQ of semantic segmentation.")
    parser.add_argument(
        "--dataset-name",
        default="ade20k_sem_seg_val",
        help="a registered semantic dataset whose records give sem_seg_file_name",
    )
    parser.add_argument("--json-file", required=True, help="sem_seg_predictions.json")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Evaluate and log PQ/SQ/RQ/mIoU; returns the dict of :func:`evaluate_semantic_pq`."""
    import mask2former.data  # noqa: F401  (registers Mask2Former's builtin datasets)

    args = get_parser().parse_args(argv)
    if args.dataset_name not in DatasetCatalog.list():
        raise KeyError(f"Dataset {args.dataset_name!r} is not registered")
    predictions = load_predictions(args.json_file)
    gt_files = {
        _stem(r["file_name"]): r["sem_seg_file_name"] for r in DatasetCatalog.get(args.dataset_name)
    }
    missing = sorted(set(predictions) - set(gt_files))
    if missing:
        raise KeyError(f"Predictions for images not in {args.dataset_name!r}: {missing[:5]}")

    meta = MetadataCatalog.get(args.dataset_name)
    num_classes = len(meta.stuff_classes)
    mapping = meta.get("stuff_dataset_id_to_contiguous_id")

    def pairs() -> Iterable[Tuple[np.ndarray, np.ndarray]]:
        for stem, annotations in predictions.items():
            gt = read_image(gt_files[stem]).astype(np.int64)
            pred = predictions_to_label_map(annotations, gt.shape, mapping, meta.ignore_label)
            yield gt, pred

    results = evaluate_semantic_pq(pairs(), num_classes, meta.ignore_label)
    logger.info(
        f"{len(predictions)} images of {args.dataset_name}: PQ {results['PQ']:.1f}, "
        f"SQ {results['SQ']:.1f}, RQ {results['RQ']:.1f} over {results['n']} classes; "
        f"mIoU {results['mIoU']:.1f}"
    )
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
