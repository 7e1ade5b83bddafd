# Copyright (c) the mask2former authors.
"""Semantic segmentation evaluation (mIoU, fwIoU, mACC, pACC): detectron2's ``SemSegEvaluator``,
with well-defined numbers when nothing was evaluated."""

import logging
import os
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
import torch
from detectron2.evaluation import SemSegEvaluator
from detectron2.utils.file_io import PathManager

__all__ = ["SemanticSegEvaluator"]

logger = logging.getLogger(__name__)


class SemanticSegEvaluator(SemSegEvaluator):
    """detectron2's ``SemSegEvaluator`` (same arguments and results), except when no labelled
    ground-truth pixel was evaluated (no image processed, or every pixel the ignore label):
    detectron2 then divides 0 by 0 and reports NaN; here every metric is 0, with a warning.

    Otherwise the results are detectron2's, including NaN for the per-class IoU / accuracy of a
    class absent from the ground truth (the usual convention; mIoU averages the others).
    """

    def evaluate(self) -> Optional[Dict[str, Dict[str, float]]]:
        with np.errstate(divide="ignore", invalid="ignore"):
            results = super().evaluate()
        if results is None:  # not the main process
            return results
        labelled_pixels = int(self._conf_matrix[:-1, :-1].sum())  # [pred, gt] without ignore
        if labelled_pixels:
            return results
        logger.warning(
            f"No labelled pixel was evaluated for {self._dataset_name!r} (no image, or only "
            "ignored pixels): every semantic segmentation metric is 0"
        )
        res = {name: 0.0 for name in results["sem_seg"]}
        if self._output_dir:
            with PathManager.open(
                os.path.join(self._output_dir, "sem_seg_evaluation.pth"), "wb"
            ) as f:
                torch.save(res, f)
        return OrderedDict({"sem_seg": res})
