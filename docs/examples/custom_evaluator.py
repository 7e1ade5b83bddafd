"""An evaluator of your own, for a new ``evaluator_type``, in Mask2Former's ``EVALUATOR_REGISTRY``.

The trainer (during training and with ``--eval-only``) evaluates each dataset of
``DATASETS.TEST`` with the evaluators that ``build_evaluator`` gets for the dataset's
``evaluator_type`` metadata. This file registers a factory for ``"pixel_accuracy"`` and a dataset
that asks for it, ``my_shapes_pixel_accuracy_val``: the semantic labels of custom_dataset.py,
registered the plain detectron2 way (``DatasetCatalog`` + ``MetadataCatalog``).
"""

import os
from typing import Any, Dict, List

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_sem_seg
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from PIL import Image

from mask2former.evaluation import EVALUATOR_REGISTRY


class PixelAccuracyEvaluator(DatasetEvaluator):
    """Share of the labelled pixels whose ``sem_seg`` argmax is the ground-truth class."""

    def __init__(self, dataset_name: str):
        self.ignore_label = MetadataCatalog.get(dataset_name).ignore_label
        records = DatasetCatalog.get(dataset_name)
        self.label_files = {r["file_name"]: r["sem_seg_file_name"] for r in records}

    def reset(self) -> None:
        self.correct = self.labelled = 0

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        for item, output in zip(inputs, outputs):
            prediction = output["sem_seg"].argmax(0).cpu().numpy()  # [K, H, W] scores -> [H, W]
            label = np.asarray(Image.open(self.label_files[item["file_name"]]))  # [H, W]
            valid = label != self.ignore_label
            self.correct += int((prediction[valid] == label[valid]).sum())
            self.labelled += int(valid.sum())

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        counts = comm.gather((self.correct, self.labelled))  # one pair per process, on rank 0
        if not comm.is_main_process():
            return {}
        correct, labelled = np.sum(counts, axis=0)
        return {"pixel_accuracy": {"pACC": 100.0 * correct / max(labelled, 1)}}


@EVALUATOR_REGISTRY.register_types("pixel_accuracy")
def pixel_accuracy_evaluators(
    cfg: CfgNode, dataset_name: str, output_dir: str
) -> List[DatasetEvaluator]:
    return [PixelAccuracyEvaluator(dataset_name)]


def load_my_shapes_val() -> List[Dict[str, Any]]:
    """detectron2 dicts with ``file_name`` and ``sem_seg_file_name`` (matched by file name)."""
    root = os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "my_shapes", "val")
    return load_sem_seg(os.path.join(root, "panoptic_semseg"), os.path.join(root, "images"))


DatasetCatalog.register("my_shapes_pixel_accuracy_val", load_my_shapes_val)
MetadataCatalog.get("my_shapes_pixel_accuracy_val").set(
    evaluator_type="pixel_accuracy", ignore_label=255
)
