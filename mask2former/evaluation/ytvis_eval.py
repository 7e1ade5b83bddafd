# Copyright (c) the mask2former authors.
"""YouTube-VIS evaluation: COCO-style AP and AR for video instance segmentation.

The metric of Yang et al., "Video Instance Segmentation" (ICCV 2019), as scored by the
YouTube-VIS server and by the official Mask2Former's vendored ``YTVOSeval`` (a video variant of
the COCO API's ``COCOeval``, Lin et al. 2014), written here for current numpy:

- one ground-truth *track* or predicted track per (video, category); the IoU of a prediction and a
  track is the sum over frames of their intersections over the sum over frames of their unions
  (a frame where only one of them is present adds its area to the union);
- greedy matching by descending score at IoU thresholds 0.50:0.05:0.95, crowd tracks matched
  many times and ignored, 101-point interpolated precision, at most 1/10/100 predictions per video;
- area ranges on the mean area over the frames where the track is present (non-null, non-zero):
  small < 128^2 <= medium < 256^2 <= large (bounds inclusive on both sides, as in COCOeval).

Masks are COCO RLEs (pycocotools); per-frame intersections are computed by pycocotools' RLE IoU.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

__all__ = [
    "AREA_RANGES",
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "RECALL_THRESHOLDS",
    "STAT_NAMES",
    "YTVISEvalResult",
    "evaluate_ytvis",
]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS: Tuple[int, ...] = (1, 10, 100)
# Name -> (min, max) of the mean present area, in pixels.
AREA_RANGES: Dict[str, Tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 128.0**2),
    "medium": (128.0**2, 256.0**2),
    "large": (256.0**2, 1e5**2),
}
# The 12 summary numbers, in COCOeval's order: (name, is AP, IoU index or None, area, maxDets).
_SUMMARY: Tuple[Tuple[str, bool, Optional[int], str, int], ...] = (
    ("AP", True, None, "all", 100),
    ("AP50", True, 0, "all", 100),
    ("AP75", True, 5, "all", 100),
    ("APs", True, None, "small", 100),
    ("APm", True, None, "medium", 100),
    ("APl", True, None, "large", 100),
    ("AR1", False, None, "all", 1),
    ("AR10", False, None, "all", 10),
    ("AR100", False, None, "all", 100),
    ("ARs", False, None, "small", 100),
    ("ARm", False, None, "medium", 100),
    ("ARl", False, None, "large", 100),
)
STAT_NAMES: Tuple[str, ...] = tuple(name for name, *_ in _SUMMARY)


@dataclass
class _Track:
    """A ground-truth or predicted track: one RLE (or None where absent) per frame."""

    id: int
    rles: List[Optional[Dict[str, Any]]]
    areas: np.ndarray  # [F] float, 0 where absent
    mean_area: float
    score: float = 1.0
    crowd: bool = False


@dataclass
class YTVISEvalResult:
    """Summary numbers (fractions in [0, 1]; -1 where no ground truth defines them) and the
    accumulated arrays: ``precision`` [T, R, K, A, M] and ``recall`` [T, K, A, M] over IoU
    thresholds, recall thresholds, ``category_ids``, area ranges and ``MAX_DETS`` (-1: no
    ground truth of that category and area)."""

    stats: Dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    category_ids: List[int] = field(default_factory=list)


def _to_rle(segm: Any, height: int, width: int) -> Dict[str, Any]:
    """Compressed RLE of polygons, uncompressed RLE or compressed RLE."""
    if isinstance(segm, list):
        return mask_util.merge(mask_util.frPyObjects(segm, height, width))
    if isinstance(segm["counts"], list):
        return mask_util.frPyObjects(segm, height, width)
    return segm


def _ground_truth_track(annotation: Dict, video: Dict) -> _Track:
    height, width = video["height"], video["width"]
    rles = [_to_rle(s, height, width) if s else None for s in annotation["segmentations"]]
    areas = np.array([float(mask_util.area(r)) if r else 0.0 for r in rles])
    listed = annotation.get("areas")  # the json's areas define the size, as officially
    present = [a for a in listed if a] if listed is not None else [a for a in areas if a]
    return _Track(
        id=annotation["id"],
        rles=rles,
        areas=areas,
        mean_area=float(np.mean(present)) if present else 0.0,
        crowd=bool(annotation.get("iscrowd", 0)),
    )


def _predicted_track(index: int, result: Dict, video: Dict) -> _Track:
    rles = list(result["segmentations"])
    if len(rles) != video["length"]:
        raise ValueError(
            f"Prediction {index} for video {video['id']} has {len(rles)} segmentations but the "
            f"video has {video['length']} frames"
        )
    size = [video["height"], video["width"]]
    for rle in rles:
        if rle and list(rle["size"]) != size:
            raise ValueError(
                f"Prediction {index} for video {video['id']} has a mask of size {rle['size']}, "
                f"but the video is {size} (height, width)"
            )
    areas = np.array([float(mask_util.area(r)) if r else 0.0 for r in rles])
    present = areas[areas > 0]
    return _Track(
        id=index + 1,
        rles=rles,
        areas=areas,
        mean_area=float(present.mean()) if present.size else 0.0,
        score=float(result["score"]),
    )


def _track_ious(dts: Sequence[_Track], gts: Sequence[_Track]) -> np.ndarray:
    """[D, G] IoU over the frames: sum of intersections / sum of unions."""
    inter = np.zeros((len(dts), len(gts)))
    union = np.zeros((len(dts), len(gts)))
    num_frames = min([len(t.rles) for t in list(dts) + list(gts)], default=0)
    for f in range(num_frames):
        d_area = np.array([t.areas[f] for t in dts])  # [D], 0 where absent
        g_area = np.array([t.areas[f] for t in gts])  # [G]
        union += d_area[:, None] + g_area[None, :]
        d_idx = [i for i, t in enumerate(dts) if t.rles[f]]
        g_idx = [j for j, t in enumerate(gts) if t.rles[f]]
        if not d_idx or not g_idx:
            continue
        # With every ground truth flagged crowd, pycocotools gives intersection / area(pred).
        ratio = np.asarray(
            mask_util.iou(
                [dts[i].rles[f] for i in d_idx], [gts[j].rles[f] for j in g_idx], [1] * len(g_idx)
            )
        ).reshape(len(d_idx), len(g_idx))
        frame_inter = np.rint(ratio * d_area[d_idx][:, None])  # [D', G'] pixel counts
        inter[np.ix_(d_idx, g_idx)] += frame_inter
        union[np.ix_(d_idx, g_idx)] -= frame_inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match(
    ious: np.ndarray, dts: Sequence[_Track], gts: Sequence[_Track], area: Tuple[float, float]
) -> Dict[str, np.ndarray]:
    """Greedy matching of one (video, category) in one area range, as COCOeval.evaluateImg.

    ``dts`` are sorted by descending score; ``ious`` is [D, G]. Returns ``scores`` [D],
    ``matched`` and ``ignored`` [T, D] bool, and ``gt_ignored`` [G] bool."""
    lo, hi = area
    gt_ignored = np.array([g.crowd or not lo <= g.mean_area <= hi for g in gts], dtype=bool)
    order = np.argsort(gt_ignored, kind="mergesort")  # regular ground truth first
    gt_ignored, crowd = gt_ignored[order], [gts[j].crowd for j in order]
    ious = ious[:, order]
    num_t, num_d = len(IOU_THRESHOLDS), len(dts)
    matched = np.zeros((num_t, num_d), dtype=bool)
    ignored = np.zeros((num_t, num_d), dtype=bool)
    gt_taken = np.zeros((num_t, len(gts)), dtype=bool)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        for d in range(num_d):
            best, m = min(threshold, 1 - 1e-10), -1
            for g in range(len(gts)):
                if gt_taken[t, g] and not crowd[g]:
                    continue
                if m > -1 and not gt_ignored[m] and gt_ignored[g]:
                    break  # matched a regular track; only ignored ones remain
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m > -1:
                matched[t, d], ignored[t, d], gt_taken[t, m] = True, gt_ignored[m], True
    outside = np.array([not lo <= d.mean_area <= hi for d in dts], dtype=bool)
    ignored |= ~matched & outside[None, :]
    scores = np.array([d.score for d in dts])
    return {"scores": scores, "matched": matched, "ignored": ignored, "gt_ignored": gt_ignored}


def _accumulate(evals: List[Dict[str, np.ndarray]], max_det: int) -> Tuple[np.ndarray, float]:
    """Precision [T, R] and recall [T] of one (category, area, maxDets); (None, -1) rows when no
    regular ground truth."""
    num_t, num_r = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    num_gt = sum(int((~e["gt_ignored"]).sum()) for e in evals)
    if num_gt == 0:
        return -np.ones((num_t, num_r)), -np.ones(num_t)
    scores = np.concatenate([e["scores"][:max_det] for e in evals])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e["matched"][:, :max_det] for e in evals], axis=1)[:, order]
    ignored = np.concatenate([e["ignored"][:, :max_det] for e in evals], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)  # [T, D]
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    precision, recall = np.zeros((num_t, num_r)), np.zeros(num_t)
    for t in range(num_t):
        if tp.shape[1] == 0:
            continue
        rc = tp[t] / num_gt
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1]
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope
        idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        valid = idx < len(pr)
        precision[t, valid] = pr[idx[valid]]
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray) -> Dict[str, float]:
    areas, stats = list(AREA_RANGES), {}
    for name, is_ap, iou_index, area, max_det in _SUMMARY:
        a, m = areas.index(area), MAX_DETS.index(max_det)
        values = precision[..., a, m] if is_ap else recall[..., a, m]  # [T, (R,) K]
        if iou_index is not None:
            values = values[iou_index]
        defined = values[values > -1]
        stats[name] = float(np.mean(defined)) if defined.size else -1.0
    return stats


def evaluate_ytvis(
    ground_truth: Dict[str, Any], results: Sequence[Dict[str, Any]]
) -> YTVISEvalResult:
    """Score ``results`` against ``ground_truth`` (both in YouTube-VIS json format).

    Args:
        ground_truth: ``videos`` (``id``, ``height``, ``width``, ``length``), ``categories``
            (``id``) and ``annotations`` (``id``, ``video_id``, ``category_id``,
            ``segmentations``, ``areas``, ``iscrowd``).
        results: dicts with ``video_id``, ``category_id`` (dataset id), ``score`` and
            ``segmentations`` (one compressed RLE or None per frame of the video). Results of
            categories absent from the ground truth are dropped, as officially.

    Raises:
        ValueError: a result for an unknown video, or with the wrong frame count or mask size.
    """
    videos = {v["id"]: v for v in ground_truth["videos"]}
    category_ids = sorted(c["id"] for c in ground_truth["categories"])
    gts: Dict[Tuple[int, int], List[_Track]] = defaultdict(list)
    for annotation in ground_truth.get("annotations", []):
        key = (annotation["video_id"], annotation["category_id"])
        if key[0] in videos and key[1] in category_ids:
            gts[key].append(_ground_truth_track(annotation, videos[key[0]]))
    dts: Dict[Tuple[int, int], List[_Track]] = defaultdict(list)
    for index, result in enumerate(results):
        if result["video_id"] not in videos:
            raise ValueError(f"Prediction {index} is for video {result['video_id']}, not in gt")
        if result["category_id"] in category_ids:
            key = (result["video_id"], result["category_id"])
            dts[key].append(_predicted_track(index, result, videos[result["video_id"]]))

    # evals[category][area]: per-video matching results, videos in ascending id order.
    evals: List[List[List[Dict[str, np.ndarray]]]] = [
        [[] for _ in AREA_RANGES] for _ in category_ids
    ]
    for k, category in enumerate(category_ids):
        for video_id in sorted(videos):
            gt, dt = gts.get((video_id, category), []), dts.get((video_id, category), [])
            if not gt and not dt:
                continue
            order = np.argsort([-d.score for d in dt], kind="mergesort")[: MAX_DETS[-1]]
            dt = [dt[i] for i in order]
            ious = _track_ious(dt, gt)
            for a, area in enumerate(AREA_RANGES.values()):
                evals[k][a].append(_match(ious, dt, gt, area))

    shape = (len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(category_ids))
    precision = -np.ones((*shape, len(AREA_RANGES), len(MAX_DETS)))
    recall = -np.ones((shape[0], shape[2], len(AREA_RANGES), len(MAX_DETS)))
    for k in range(len(category_ids)):
        for a in range(len(AREA_RANGES)):
            if not evals[k][a]:
                continue
            for m, max_det in enumerate(MAX_DETS):
                precision[:, :, k, a, m], recall[:, k, a, m] = _accumulate(evals[k][a], max_det)
    return YTVISEvalResult(_summarize(precision, recall), precision, recall, category_ids)
