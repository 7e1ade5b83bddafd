"""COCO-style instance evaluation (AP) for every COCO-format instance dataset.

Adapted from the official Mask2Former ``InstanceSegEvaluator`` (facebookresearch/Mask2Former,
``mask2former/evaluation/instance_evaluation.py``), itself a modified detectron2 ``COCOEvaluator``:
thing ids need not be contiguous, and (ours) a model with no prediction at all scores 0, not NaN
(detectron2 reports NaN then, since pycocotools cannot load an empty result list).
"""

import contextlib
import copy
import io
import itertools
import json
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

from detectron2.data import Metadata
from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation.coco_evaluation import _evaluate_predictions_on_coco
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = [
    "InstanceSegEvaluator",
    "evaluate_without_predictions",
    "fast_coco_eval_available",
    "unmap_category_ids",
]


def fast_coco_eval_available() -> bool:
    """True when detectron2's compiled extension (and so its fast C++ COCOeval) imports."""
    try:
        from detectron2 import _C  # noqa: F401
    except ImportError:
        return False
    return True


def unmap_category_ids(results: List[Dict[str, Any]], metadata: Metadata) -> None:
    """Replace each result's contiguous ``category_id`` by the dataset id of
    ``metadata.thing_dataset_id_to_contiguous_id``, in place (nothing when the map is absent).

    Raises:
        ValueError: a ``category_id`` that is not a contiguous id of the map.
    """
    dataset_id_to_contiguous_id = metadata.get("thing_dataset_id_to_contiguous_id")
    if dataset_id_to_contiguous_id is None:
        return
    reverse_id_mapping = {v: k for k, v in dataset_id_to_contiguous_id.items()}
    for result in results:
        category_id = result["category_id"]
        if category_id not in reverse_id_mapping:
            raise ValueError(
                f"A prediction has class {category_id}, but dataset {metadata.name!r} only has "
                f"thing classes {sorted(reverse_id_mapping)} (contiguous ids)."
            )
        result["category_id"] = reverse_id_mapping[category_id]


def evaluate_without_predictions(
    coco_gt: COCO, iou_type: str, img_ids: Optional[Sequence[int]] = None
) -> COCOeval:
    """Summarized ``COCOeval`` of ``coco_gt`` against no prediction at all: every AP / AR that
    the ground truth defines is 0 (-1 where it has no object, as with any prediction)."""
    coco_dt = COCO()
    coco_dt.dataset = {
        "images": list(coco_gt.dataset.get("images", [])),
        "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt.createIndex()
    coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
    if img_ids is not None:
        coco_eval.params.imgIds = list(img_ids)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval


class InstanceSegEvaluator(COCOEvaluator):
    """COCO AP (segm and bbox) for COCO-format instance datasets: detectron2's ``COCOEvaluator``
    with two differences.

    - Thing ids need not be contiguous: for datasets such as ADE20K or Mapillary Vistas
      panoptic, ``thing_dataset_id_to_contiguous_id`` maps thing ids to contiguous ids among
      *all* classes (things and stuff), so they are not ``0..T-1`` and detectron2's evaluator
      rejects them. This one only requires each predicted id to be in the map, and maps it back
      to the dataset id through the reverse map.
    - No prediction at all (images processed but nothing predicted, e.g. a model that predicts
      only "no object", or no image processed) scores 0 wherever the ground truth defines a
      number, as a model that missed everything (detectron2: NaN, or no result).

    The tasks are inferred from the predictions unless given: "bbox" always (the model returns
    boxes from its masks), "segm" when predictions carry masks; without predictions, "segm" when
    the ground truth has masks.
    """

    def __init__(
        self,
        dataset_name: str,
        tasks: Optional[Sequence[str]] = None,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        max_dets_per_image: Optional[int] = None,
        use_fast_impl: Optional[bool] = None,
        kpt_oks_sigmas: Sequence[float] = (),
        allow_cached_coco: bool = True,
    ) -> None:
        """Same arguments as detectron2's ``COCOEvaluator``; ``use_fast_impl=None`` uses the
        fast C++ COCOeval only when detectron2's extension is built."""
        if use_fast_impl is None:
            use_fast_impl = fast_coco_eval_available()
        super().__init__(
            dataset_name,
            tasks=tasks,
            distributed=distributed,
            output_dir=output_dir,
            max_dets_per_image=max_dets_per_image,
            use_fast_impl=use_fast_impl,
            kpt_oks_sigmas=kpt_oks_sigmas,
            allow_cached_coco=allow_cached_coco,
        )

    def evaluate(self, img_ids: Optional[Sequence[int]] = None) -> Dict[str, Any]:
        """detectron2's evaluation; when no image at all was processed, the metrics of no
        prediction (0) instead of an empty result."""
        results = super().evaluate(img_ids)
        if results or not comm.is_main_process() or not self._do_evaluation:
            return results
        self._results = OrderedDict()
        self._eval_predictions([], img_ids)
        return copy.deepcopy(self._results)

    def _tasks_without_predictions(self) -> List[str]:
        has_masks = any("segmentation" in a for a in self._coco_api.dataset.get("annotations", []))
        return ["bbox", "segm"] if has_masks else ["bbox"]

    def _unmap_category_ids(self, coco_results: List[Dict[str, Any]]) -> None:
        """Replace each result's contiguous ``category_id`` by the dataset id, in place."""
        unmap_category_ids(coco_results, self._metadata)

    def _eval_predictions(
        self, predictions: List[Dict[str, Any]], img_ids: Optional[List[int]] = None
    ) -> None:
        """Fill ``self._results[task]`` with COCO metrics for each task.

        Args:
            predictions: one dict per image with key ``instances``: COCO-format result dicts
                (``image_id``, ``category_id`` (contiguous), ``score``, ``bbox``, ``segmentation``)
                as produced by detectron2's ``instances_to_coco_json``.
            img_ids: restrict evaluation to these image ids (default: all).
        """
        self._logger.info("Preparing results for COCO format ...")
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        if self._tasks:
            tasks = self._tasks
        elif coco_results:
            tasks = self._tasks_from_predictions(coco_results)
        else:
            tasks = self._tasks_without_predictions() if self._do_evaluation else ["bbox"]
        self._unmap_category_ids(coco_results)

        if self._output_dir:
            PathManager.mkdirs(self._output_dir)  # not made yet when no image was processed
            file_path = os.path.join(self._output_dir, "coco_instances_results.json")
            self._logger.info(f"Saving results to {file_path}")
            with PathManager.open(file_path, "w") as f:
                f.write(json.dumps(coco_results))

        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return

        cocoeval_fn = COCOeval
        if self._use_fast_impl:
            from detectron2.evaluation.fast_eval_api import COCOeval_opt

            cocoeval_fn = COCOeval_opt
        for task in sorted(tasks):
            if task not in {"bbox", "segm", "keypoints"}:
                raise ValueError(f"Unknown COCO task {task!r}")
            if not coco_results:  # pycocotools cannot load an empty result list
                self._logger.warning(f"No {task} predictions: every {task} metric is 0")
                coco_eval = evaluate_without_predictions(self._coco_api, task, img_ids)
            else:
                coco_eval = _evaluate_predictions_on_coco(
                    self._coco_api,
                    coco_results,
                    task,
                    kpt_oks_sigmas=self._kpt_oks_sigmas,
                    cocoeval_fn=cocoeval_fn,
                    img_ids=img_ids,
                    max_dets_per_image=self._max_dets_per_image,
                )
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes")
            )
