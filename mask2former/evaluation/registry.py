"""Registry of evaluators, keyed by a dataset's ``evaluator_type`` metadata.

It replaces the official ``Trainer.build_evaluator`` if/elif chain (facebookresearch/Mask2Former
``train_net.py``): each evaluator type maps to a factory, and any dataset registered the standard
detectron2 way (``register_coco_instances`` sets "coco", ``register_coco_panoptic`` sets
"coco_panoptic_seg", ...) is evaluated without touching this file. The built-in factories live in
:mod:`mask2former.evaluation.evaluator_factories`.
"""

import os
from typing import Callable, List, Optional

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators
from detectron2.utils.registry import Registry

from ..data.datasets.lookup import check_registered

__all__ = ["EVALUATOR_REGISTRY", "EvaluatorFactory", "build_evaluator"]

# f(cfg, dataset_name, output_dir) -> the evaluators to run on that dataset (may be empty when the
# config switches every metric of the dataset off).
EvaluatorFactory = Callable[[CfgNode, str, str], List[DatasetEvaluator]]


class EvaluatorTypeRegistry(Registry):
    """A detectron2 :class:`Registry` whose keys are ``evaluator_type`` strings, not object names.

    One factory may serve several evaluator types (e.g. every panoptic dataset family).
    """

    def register_types(
        self, *evaluator_types: str
    ) -> Callable[[EvaluatorFactory], EvaluatorFactory]:
        """Decorator registering a factory under each of ``evaluator_types``."""
        if not evaluator_types:
            raise ValueError("register_types needs at least one evaluator type")

        def deco(factory: EvaluatorFactory) -> EvaluatorFactory:
            for evaluator_type in evaluator_types:
                self._do_register(evaluator_type, factory)
            return factory

        return deco


EVALUATOR_REGISTRY = EvaluatorTypeRegistry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """
Registry mapping a dataset's ``evaluator_type`` (``MetadataCatalog.get(name).evaluator_type``) to a
factory ``f(cfg, dataset_name, output_dir) -> List[DatasetEvaluator]``.
Register with ``@EVALUATOR_REGISTRY.register_types("my_type", ...)``.
"""


def build_evaluator(
    cfg: CfgNode, dataset_name: str, output_dir: Optional[str] = None
) -> DatasetEvaluator:
    """Build the evaluator(s) for a registered dataset from its ``evaluator_type`` metadata.

    Args:
        cfg: the full config (factories read ``MODEL.MASK_FORMER.TEST.{SEMANTIC,INSTANCE,
            PANOPTIC}_ON``).
        dataset_name: a name registered in detectron2's ``DatasetCatalog``.
        output_dir: where evaluators dump predictions; default ``cfg.OUTPUT_DIR/inference``.

    Returns:
        The single evaluator, or a :class:`DatasetEvaluators` when the dataset gets several
        (e.g. COCO panoptic: PQ + mIoU + AP in one pass).

    Raises:
        KeyError: the dataset is not registered (the message lists the close names).
        ValueError: the dataset has no ``evaluator_type`` metadata.
        NotImplementedError: no factory for its ``evaluator_type``, or the config switches every
            metric of the dataset off (detectron2's ``DefaultTrainer.test`` skips such datasets).
    """
    check_registered([dataset_name], "evaluated dataset")
    if output_dir is None:
        output_dir = os.path.join(cfg.OUTPUT_DIR, "inference")
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type")
    if evaluator_type is None:
        raise ValueError(
            f"Dataset {dataset_name!r} has no 'evaluator_type' metadata, so no evaluator can be "
            f"chosen for it. Register it with detectron2's register_coco_instances / "
            f"register_coco_panoptic, or set MetadataCatalog.get({dataset_name!r}).evaluator_type "
            f"to one of {sorted(k for k, _ in EVALUATOR_REGISTRY)}."
        )
    if evaluator_type not in EVALUATOR_REGISTRY:
        raise NotImplementedError(
            f"No evaluator registered for evaluator_type {evaluator_type!r} of dataset "
            f"{dataset_name!r}; registered types: {sorted(k for k, _ in EVALUATOR_REGISTRY)}"
        )
    evaluators = EVALUATOR_REGISTRY.get(evaluator_type)(cfg, dataset_name, output_dir)
    if not evaluators:
        raise NotImplementedError(
            f"No evaluator for dataset {dataset_name!r} (evaluator_type {evaluator_type!r}) "
            f"with MODEL.MASK_FORMER.TEST.{{SEMANTIC,INSTANCE,PANOPTIC}}_ON = "
            f"{_inference_flags(cfg)}"
        )
    if len(evaluators) == 1:
        return evaluators[0]
    return DatasetEvaluators(evaluators)


def _inference_flags(cfg: CfgNode) -> List[bool]:
    test = cfg.MODEL.MASK_FORMER.TEST
    return [test.SEMANTIC_ON, test.INSTANCE_ON, test.PANOPTIC_ON]
