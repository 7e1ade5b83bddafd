# Copyright (c) the mask2former authors.
"""Panoptic quality (PQ, SQ, RQ; Kirillov et al., CVPR 2019) with the COCO panoptic API:
detectron2's ``COCOPanopticEvaluator`` with well-defined numbers when a category group is absent.

panopticapi's ``PQStat.pq_average`` divides by the number of categories of a group (all, things,
stuff) that occur in the ground truth or the predictions: a dataset or split without stuff (or
things), or predictions and ground truth both empty for that group, raise ZeroDivisionError
there. Here such a group scores 0, with a warning; the other groups are panopticapi's numbers.
"""

import contextlib
import io
import itertools
import json
import logging
import os
import tempfile
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

from detectron2.evaluation import COCOPanopticEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from tabulate import tabulate

__all__ = ["PANOPTIC_METRICS", "PanopticSegEvaluator", "pq_group_average"]

logger = logging.getLogger(__name__)

# (name, isthing) of the category groups, and the reported metrics (in percent).
_GROUPS: Tuple[Tuple[str, Optional[bool]], ...] = (
    ("All", None),
    ("Things", True),
    ("Stuff", False),
)
_SUFFIX = {"All": "", "Things": "_th", "Stuff": "_st"}
PANOPTIC_METRICS = tuple(f"{m}{_SUFFIX[g]}" for g, _ in _GROUPS for m in ("PQ", "SQ", "RQ"))


def pq_group_average(pq_stat: Any, categories: Dict[int, Dict], isthing: Optional[bool]) -> Dict:
    """``pq_stat.pq_average(categories, isthing)[0]`` (``pq``, ``sq``, ``rq`` in [0, 1] and
    ``n``, the number of categories counted), or zeros with ``n = 0`` when no category of the
    group occurs in the ground truth or the predictions (where panopticapi divides by zero)."""
    in_group = [
        c for c, info in categories.items() if isthing is None or (info["isthing"] == 1) == isthing
    ]
    stats = [pq_stat.pq_per_cat[c] for c in in_group]
    if not any(s.tp + s.fp + s.fn > 0 for s in stats):
        return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}
    return pq_stat.pq_average(categories, isthing=isthing)[0]


class PanopticSegEvaluator(COCOPanopticEvaluator):
    """PQ / SQ / RQ (all, things ``_th``, stuff ``_st``) of a COCO-panoptic-format dataset, as
    detectron2's ``COCOPanopticEvaluator`` (same arguments, ``process``, results and
    ``predictions.json``), except that:

    - a category group absent from both ground truth and predictions scores 0 (panopticapi:
      ZeroDivisionError), e.g. a model that predicts only "no object" (an all-VOID panoptic map)
      on a dataset without stuff;
    - with no image processed at all, every metric is 0 (panopticapi: "no prediction for the
      image"); an image missing from predictions that cover others is still an error.
    """

    def evaluate(self) -> Optional[Dict[str, Dict[str, float]]]:
        comm.synchronize()
        predictions: List[Dict[str, Any]] = list(itertools.chain(*comm.gather(self._predictions)))
        if not comm.is_main_process():
            return None
        if not predictions:
            logger.warning("No panoptic prediction at all: every panoptic metric is 0")
            return OrderedDict(panoptic_seg={name: 0.0 for name in PANOPTIC_METRICS})
        gt_json = PathManager.get_local_path(self._metadata.panoptic_json)
        gt_folder = PathManager.get_local_path(self._metadata.panoptic_root)
        with open(gt_json) as f:
            json_data = json.load(f)
        annotations = [{k: v for k, v in p.items() if k != "png_string"} for p in predictions]
        with tempfile.TemporaryDirectory(prefix="panoptic_eval") as pred_dir:
            logger.info(f"Writing all panoptic predictions to {pred_dir} ...")
            for prediction in predictions:
                with open(os.path.join(pred_dir, prediction["file_name"]), "wb") as f:
                    f.write(prediction["png_string"])
            predictions_json = os.path.join(self._output_dir or pred_dir, "predictions.json")
            with PathManager.open(predictions_json, "w") as f:
                f.write(json.dumps(dict(json_data, annotations=annotations)))
            pq_res = self._pq(json_data, annotations, gt_folder, pred_dir)
        res = {
            f"{metric.upper()}{_SUFFIX[group]}": 100 * pq_res[group][metric]
            for group, _ in _GROUPS
            for metric in ("pq", "sq", "rq")
        }
        _log_table(pq_res)
        return OrderedDict({"panoptic_seg": res})

    def _pq(
        self, gt: Dict, annotations: List[Dict], gt_folder: str, pred_folder: str
    ) -> Dict[str, Dict]:
        """panopticapi's per-image matching (its processes) and our group averages."""
        from panopticapi.evaluation import pq_compute_multi_core

        by_image = {a["image_id"]: a for a in annotations}
        missing = [a["image_id"] for a in gt["annotations"] if a["image_id"] not in by_image]
        if missing:
            raise ValueError(
                f"No panoptic prediction for {len(missing)} image(s) of dataset "
                f"{self._metadata.name!r}, e.g. image ids {missing[:5]}"
            )
        matched = [(a, by_image[a["image_id"]]) for a in gt["annotations"]]
        categories = {c["id"]: c for c in gt["categories"]}
        with contextlib.redirect_stdout(io.StringIO()):
            pq_stat = pq_compute_multi_core(matched, gt_folder, pred_folder, categories)
        pq_res = {}
        for group, isthing in _GROUPS:
            pq_res[group] = pq_group_average(pq_stat, categories, isthing)
            if pq_res[group]["n"] == 0:
                logger.warning(
                    f"No {group.lower()} category in the ground truth or the predictions of "
                    f"{self._metadata.name!r}: PQ/SQ/RQ of that group are reported as 0"
                )
        return pq_res


def _log_table(pq_res: Dict[str, Dict]) -> None:
    rows = [
        [g] + [pq_res[g][k] * 100 for k in ("pq", "sq", "rq")] + [pq_res[g]["n"]] for g in pq_res
    ]
    table = tabulate(
        rows,
        headers=["", "PQ", "SQ", "RQ", "#categories"],
        tablefmt="pipe",
        floatfmt=".3f",
        stralign="center",
        numalign="center",
    )
    logger.info("Panoptic Evaluation Results:\n" + table)
