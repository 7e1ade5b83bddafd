"""COCO-style instance evaluation for datasets whose thing ids are not contiguous.

Adapted from the official Mask2Former ``InstanceSegEvaluator`` (facebookresearch/Mask2Former,
``mask2former/evaluation/instance_evaluation.py``), itself a modified detectron2 ``COCOEvaluator``.
"""

import itertools
import json
import os
from typing import Any, Dict, List, Optional, Sequence

from detectron2.data import Metadata
from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation.coco_evaluation import _evaluate_predictions_on_coco
from detectron2.utils.file_io import PathManager
from pycocotools.cocoeval import COCOeval

__all__ = ["InstanceSegEvaluator", "fast_coco_eval_available", "unmap_thing_category_ids"]


def fast_coco_eval_available() -> bool:
    """True when detectron2's compiled extension (and so its fast C++ COCOeval) imports."""
    try:
        from detectron2 import _C  # noqa: F401
    except ImportError:
        return False
    return True


def unmap_thing_category_ids(coco_results: List[Dict[str, Any]], metadata: Metadata) -> None:
    """Replace each COCO result's contiguous ``category_id`` by the dataset id, in place.

    Uses the reverse of ``metadata.thing_dataset_id_to_contiguous_id``; results are left as they
    are when the metadata has no such map.

    Raises:
        ValueError: for a contiguous id that is not a thing class of ``metadata``.
    """
    dataset_id_to_contiguous_id = metadata.get("thing_dataset_id_to_contiguous_id")
    if dataset_id_to_contiguous_id is None:
        return
    reverse_id_mapping = {v: k for k, v in dataset_id_to_contiguous_id.items()}
    for result in coco_results:
        category_id = result["category_id"]
        if category_id not in reverse_id_mapping:
            raise ValueError(
                f"A prediction has class {category_id}, but dataset {metadata.name!r} only has "
                f"thing classes {sorted(reverse_id_mapping)} (contiguous ids)."
            )
        result["category_id"] = reverse_id_mapping[category_id]


class InstanceSegEvaluator(COCOEvaluator):
    """COCO AP (segm and bbox) for datasets such as ADE20K or Mapillary Vistas panoptic.

    Their ``thing_dataset_id_to_contiguous_id`` maps thing ids to contiguous ids among *all*
    classes (things and stuff), so the contiguous thing ids are not ``0..T-1`` and detectron2's
    ``COCOEvaluator`` rejects them. This evaluator only requires each predicted id to be in the
    map, and maps it back to the dataset id through the reverse map.

    The tasks are inferred from the predictions unless given: "bbox" always (the model returns
    boxes from its masks), "segm" when predictions carry masks.
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
        tasks = self._tasks or self._tasks_from_predictions(coco_results)
        unmap_thing_category_ids(coco_results, self._metadata)

        if self._output_dir:
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
            coco_eval = (
                _evaluate_predictions_on_coco(
                    self._coco_api,
                    coco_results,
                    task,
                    kpt_oks_sigmas=self._kpt_oks_sigmas,
                    cocoeval_fn=cocoeval_fn,
                    img_ids=img_ids,
                    max_dets_per_image=self._max_dets_per_image,
                )
                if len(coco_results) > 0
                else None  # cocoapi does not handle empty results well
            )
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes")
            )
