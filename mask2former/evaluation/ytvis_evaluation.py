# Copyright (c) the mask2former authors.
"""YouTube-VIS evaluator (``evaluator_type`` "ytvis"): video model outputs -> ``results.json`` in
the YouTube-VIS submission format -> AP/AR (:func:`.ytvis_eval.evaluate_ytvis`) when the split has
annotations. Interface of the official Video Mask2Former ``YTVISEvaluator`` (adapted there from
IFC, Hwang et al. NeurIPS 2021)."""

import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from .instance_evaluation import unmap_category_ids
from .registry import EVALUATOR_REGISTRY
from .ytvis_eval import YTVISEvalResult, evaluate_ytvis

__all__ = ["YTVIS_METRICS", "YTVISEvaluator", "video_output_to_ytvis_results"]

logger = logging.getLogger(__name__)

# Reported metrics, in percent (as the official evaluator).
YTVIS_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10")

MaskList = Union[torch.Tensor, np.ndarray, Sequence[Union[torch.Tensor, np.ndarray]]]


def _encode_track(masks: Union[torch.Tensor, np.ndarray]) -> List[Dict[str, Any]]:
    """[T, H, W] masks -> T compressed RLEs (``counts`` as str), empty frames included."""
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks).astype(np.uint8)
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0)))  # [H, W, T]
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def video_output_to_ytvis_results(
    video_id: int, output: Dict[str, Any], num_frames: Optional[int] = None
) -> List[Dict[str, Any]]:
    """The official video result dict -> YouTube-VIS results (contiguous ``category_id``).

    Args:
        output: ``image_size`` (H, W), ``pred_scores`` [N] floats, ``pred_labels`` [N]
            contiguous ids and ``pred_masks``: N masks [T, H, W] (bool), as lists or tensors.
        num_frames: the video's frame count T, checked when given.

    Returns:
        N dicts ``{video_id, score, category_id, segmentations (T RLEs)}``.
    """
    scores = torch.as_tensor(output["pred_scores"], dtype=torch.float64).reshape(-1).tolist()
    labels = torch.as_tensor(output["pred_labels"]).reshape(-1).tolist()
    masks: MaskList = output["pred_masks"]
    if not (len(scores) == len(labels) == len(masks)):
        raise ValueError(
            f"Video {video_id}: {len(scores)} pred_scores, {len(labels)} pred_labels and "
            f"{len(masks)} pred_masks"
        )
    height, width = (int(v) for v in output["image_size"])
    results = []
    for score, label, track in zip(scores, labels, masks):
        shape = tuple(track.shape)
        if len(shape) != 3 or shape[1:] != (height, width) or shape[0] != (num_frames or shape[0]):
            raise ValueError(
                f"Video {video_id}: a predicted mask has shape {shape}, expected "
                f"[{num_frames or 'T'}, {height}, {width}] (frames, image_size)"
            )
        results.append(
            {
                "video_id": video_id,
                "score": float(score),
                "category_id": int(label),
                "segmentations": _encode_track(track),
            }
        )
    return results


class YTVISEvaluator(DatasetEvaluator):
    """Collects the video model's predictions and scores them as the YouTube-VIS server does.

    ``evaluate()`` writes ``<output_dir>/results.json`` (the file to zip and submit; category ids
    mapped back to the dataset's) and, when the dataset's json (metadata ``json_file``) has
    annotations, returns ``{"segm": {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10",
    "AP-<class>"...}}`` in percent (NaN where no ground truth defines a number). With no
    prediction at all the numbers are 0.
    """

    def __init__(
        self,
        dataset_name: str,
        tasks: Optional[Union[Sequence[str], CfgNode]] = None,
        distributed: bool = True,
        output_dir: Optional[str] = None,
    ) -> None:
        """
        Args:
            dataset_name: a dataset registered with ``register_ytvis_instances``.
            tasks: only "segm" is supported (None or a config: "segm").
            distributed: gather the predictions of all processes and evaluate on the main one.
            output_dir: where ``results.json`` is written (nothing is written when None).
        """
        if tasks is not None and not isinstance(tasks, CfgNode) and set(tasks) != {"segm"}:
            raise ValueError(f"YTVISEvaluator only evaluates 'segm', got tasks={tasks!r}")
        self._dataset_name = dataset_name
        self._metadata = MetadataCatalog.get(dataset_name)
        if self._metadata.get("json_file") is None:
            raise ValueError(
                f"Dataset {dataset_name!r} has no 'json_file' metadata: register it with "
                "register_ytvis_instances to evaluate it with YTVISEvaluator"
            )
        self._distributed = distributed
        self._output_dir = output_dir
        self._predictions: List[Dict[str, Any]] = []

    def reset(self) -> None:
        self._predictions = []

    def process(
        self,
        inputs: List[Dict[str, Any]],
        outputs: Union[Dict[str, Any], List[Dict[str, Any]]],
    ) -> None:
        """
        Args:
            inputs: the model inputs, one dict per video with ``video_id`` (and ``length``).
            outputs: the model's result dict (one video, as the official VideoMaskFormer returns
                it) or a list of them, one per input; see :func:`video_output_to_ytvis_results`.
        """
        if isinstance(outputs, dict):
            outputs = [outputs]
        if len(outputs) != len(inputs):
            raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
        for video, output in zip(inputs, outputs):
            self._predictions.extend(
                video_output_to_ytvis_results(video["video_id"], output, video.get("length"))
            )

    def _load_ground_truth(self) -> Dict[str, Any]:
        json_file = self._metadata.json_file
        if not PathManager.isfile(json_file):
            DatasetCatalog.get(self._dataset_name)  # generated datasets are written on first load
        if not PathManager.isfile(json_file):
            raise FileNotFoundError(
                f"YouTube-VIS json of {self._dataset_name!r} not found: {json_file}"
            )
        with PathManager.open(json_file) as f:
            return json.load(f)

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Write ``results.json`` and return the metrics (empty on non-main processes and for
        splits without annotations)."""
        predictions = self._predictions
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        ground_truth = self._load_ground_truth()
        predictions = [dict(p) for p in predictions]  # keep ours contiguous
        unmap_category_ids(predictions, self._metadata)
        if not predictions:
            logger.warning(f"No predictions for {self._dataset_name!r}: every metric is 0.")
        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            path = os.path.join(self._output_dir, "results.json")
            logger.info(f"Saving {len(predictions)} YouTube-VIS predictions to {path}")
            with PathManager.open(path, "w") as f:
                json.dump(predictions, f)
        if "annotations" not in ground_truth:
            logger.info(f"{self._dataset_name!r} has no annotations: submit results.json.")
            return OrderedDict()
        result = evaluate_ytvis(ground_truth, predictions)
        return OrderedDict(segm=self._derive_results(result))

    def _derive_results(self, result: YTVISEvalResult) -> Dict[str, float]:
        """The metrics in percent, and the AP of each class (all areas, 100 predictions)."""
        metrics = {
            name: result.stats[name] * 100 if result.stats[name] >= 0 else float("nan")
            for name in YTVIS_METRICS
        }
        logger.info(
            f"YouTube-VIS evaluation of {self._dataset_name!r}:\n" + create_small_table(metrics)
        )
        names = self._metadata.get("thing_classes")
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id")
        if names and id_map:
            for k, dataset_id in enumerate(result.category_ids):
                if dataset_id not in id_map:
                    continue
                precision = result.precision[:, :, k, 0, -1]  # [T, R]: all areas, 100 dets
                defined = precision[precision > -1]
                ap = float(np.mean(defined)) * 100 if defined.size else float("nan")
                metrics[f"AP-{names[id_map[dataset_id]]}"] = ap
        return metrics


@EVALUATOR_REGISTRY.register_types("ytvis")
def ytvis_evaluators(cfg: CfgNode, dataset_name: str, output_dir: str) -> List[DatasetEvaluator]:
    """YouTube-VIS-format video datasets (``register_ytvis_instances``): AP/AR, results.json."""
    return [YTVISEvaluator(dataset_name, output_dir=output_dir)]
