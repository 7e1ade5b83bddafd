"""Built-in evaluator factories, one per dataset family, registered in ``EVALUATOR_REGISTRY``.

The choice of evaluators per ``evaluator_type`` follows the official Mask2Former ``train_net.py``
(facebookresearch/Mask2Former). Types whose datasets get one evaluator are a table
(``SINGLE_EVALUATORS``). A panoptic model reports PQ, AP and mIoU in one pass: panoptic types get
a PQ evaluator (``PANOPTIC_ON``), a semantic evaluator (``SEMANTIC_ON`` and the dataset has
semantic ground truth) and an instance evaluator (``INSTANCE_ON`` and the dataset has instance
ground truth), each picked from a per-family table.

Where the official code uses detectron2's ``COCOEvaluator``, ``COCOPanopticEvaluator`` and
``SemSegEvaluator``, these use their subclasses :class:`InstanceSegEvaluator`,
:class:`PanopticSegEvaluator` and :class:`SemanticSegEvaluator`: the same metrics, and 0 instead
of NaN or a crash when there is nothing to score (no prediction, a model that predicts only "no
object", a category group absent).
"""

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
    DatasetEvaluator,
    LVISEvaluator,
)
from detectron2.utils import comm

from .instance_evaluation import InstanceSegEvaluator
from .panoptic_evaluation import PanopticSegEvaluator
from .registry import EVALUATOR_REGISTRY, EvaluatorFactory
from .semantic_evaluation import SemanticSegEvaluator

__all__ = ["PanopticCompanions", "PANOPTIC_COMPANIONS", "SINGLE_EVALUATORS"]

logger = logging.getLogger(__name__)


def _sem_seg(dataset_name: str, output_dir: str) -> DatasetEvaluator:
    return SemanticSegEvaluator(dataset_name, distributed=True, output_dir=output_dir)


def _instance_seg(dataset_name: str, output_dir: str) -> DatasetEvaluator:
    return InstanceSegEvaluator(dataset_name, output_dir=output_dir)


def _check_single_machine(dataset_name: str) -> None:
    # The Cityscapes scripts write predictions to a local temporary directory on each machine.
    # (The official code asserts a GPU per rank instead, which also rejects CPU-only runs.)
    if comm.get_world_size() != comm.get_local_size():
        raise RuntimeError(
            f"Cityscapes evaluators (dataset {dataset_name!r}) do not work across machines; "
            f"world size {comm.get_world_size()} != local size {comm.get_local_size()}"
        )


def _cityscapes_sem_seg(dataset_name: str, output_dir: str) -> DatasetEvaluator:
    _check_single_machine(dataset_name)
    return CityscapesSemSegEvaluator(dataset_name)


def _cityscapes_instance(dataset_name: str, output_dir: str) -> DatasetEvaluator:
    _check_single_machine(dataset_name)
    return CityscapesInstanceEvaluator(dataset_name)


def _lvis(dataset_name: str, output_dir: str) -> DatasetEvaluator:
    return LVISEvaluator(dataset_name, output_dir=output_dir)


EvaluatorBuilder = Callable[[str, str], DatasetEvaluator]

# Evaluator types whose datasets get exactly one evaluator, built from (dataset_name, output_dir).
SINGLE_EVALUATORS: Dict[Tuple[str, ...], EvaluatorBuilder] = {
    # Semantic datasets (ADE20K-150/-full, COCO-stuff, Mapillary semantic): mIoU.
    ("sem_seg",): _sem_seg,
    # COCO-format instance datasets: those registered with register_coco_instances (contiguous
    # thing ids; detectron2's COCOEvaluator in the official code) and those whose contiguous
    # thing ids are a subset of all classes: AP.
    ("coco", "ade20k_instance", "mapillary_vistas_instance"): _instance_seg,
    # LVIS (needs the lvis package): AP.
    ("lvis",): _lvis,
    # Cityscapes with the official cityscapesScripts: AP, mIoU.
    ("cityscapes_instance",): _cityscapes_instance,
    ("cityscapes_sem_seg",): _cityscapes_sem_seg,
}


def _single_evaluator_factory(build: EvaluatorBuilder) -> EvaluatorFactory:
    def factory(cfg: CfgNode, dataset_name: str, output_dir: str) -> List[DatasetEvaluator]:
        return [build(dataset_name, output_dir)]

    return factory


for _types, _build in SINGLE_EVALUATORS.items():
    EVALUATOR_REGISTRY.register_types(*_types)(_single_evaluator_factory(_build))


@dataclass(frozen=True)
class PanopticCompanions:
    """How a panoptic dataset family gets its mIoU and AP evaluators.

    Attributes:
        semantic: builds the semantic evaluator from ``(dataset_name, output_dir)``.
        semantic_metadata: metadata key whose presence means semantic ground truth exists.
        instance: builds the instance evaluator from ``(dataset_name, output_dir)``.
        instance_metadata: metadata key whose (non-None) value means instance ground truth exists.
    """

    semantic: EvaluatorBuilder
    semantic_metadata: str
    instance: EvaluatorBuilder
    instance_metadata: str


PANOPTIC_COMPANIONS: Dict[str, PanopticCompanions] = {
    "coco_panoptic_seg": PanopticCompanions(_sem_seg, "sem_seg_root", _instance_seg, "json_file"),
    "ade20k_panoptic_seg": PanopticCompanions(_sem_seg, "sem_seg_root", _instance_seg, "json_file"),
    "mapillary_vistas_panoptic_seg": PanopticCompanions(
        _sem_seg, "sem_seg_root", _instance_seg, "json_file"
    ),
    "cityscapes_panoptic_seg": PanopticCompanions(
        _cityscapes_sem_seg, "gt_dir", _cityscapes_instance, "gt_dir"
    ),
}


def _has_semantic_ground_truth(dataset_name: str, metadata_key: str) -> bool:
    if MetadataCatalog.get(dataset_name).get(metadata_key) is not None:
        return True
    if metadata_key != "sem_seg_root":
        return False
    # Official-style registrations (e.g. ADE20K panoptic) give "sem_seg_file_name" per record
    # without setting "sem_seg_root" in the metadata.
    records = DatasetCatalog.get(dataset_name)
    return len(records) > 0 and "sem_seg_file_name" in records[0]


@EVALUATOR_REGISTRY.register_types(*PANOPTIC_COMPANIONS)
def panoptic_evaluators(cfg: CfgNode, dataset_name: str, output_dir: str) -> List[DatasetEvaluator]:
    """Panoptic datasets: PQ, plus mIoU and AP when enabled and the ground truth exists."""
    test = cfg.MODEL.MASK_FORMER.TEST
    metadata = MetadataCatalog.get(dataset_name)
    companions = PANOPTIC_COMPANIONS[metadata.evaluator_type]
    evaluators: List[DatasetEvaluator] = []
    if test.PANOPTIC_ON:
        for key in ("panoptic_json", "panoptic_root"):
            if metadata.get(key) is None:
                raise ValueError(
                    f"MODEL.MASK_FORMER.TEST.PANOPTIC_ON is set but dataset {dataset_name!r} has "
                    f"no {key!r} metadata for COCOPanopticEvaluator"
                )
        evaluators.append(PanopticSegEvaluator(dataset_name, output_dir))
    if test.SEMANTIC_ON:
        if _has_semantic_ground_truth(dataset_name, companions.semantic_metadata):
            evaluators.append(companions.semantic(dataset_name, output_dir))
        else:
            logger.warning(
                f"SEMANTIC_ON but dataset {dataset_name!r} has no semantic ground truth "
                f"({companions.semantic_metadata!r}); mIoU is not evaluated."
            )
    if test.INSTANCE_ON:
        if metadata.get(companions.instance_metadata) is not None:
            evaluators.append(companions.instance(dataset_name, output_dir))
        else:
            logger.warning(
                f"INSTANCE_ON but dataset {dataset_name!r} has no instance ground truth "
                f"({companions.instance_metadata!r}); AP is not evaluated."
            )
    return evaluators
