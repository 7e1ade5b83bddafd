"""Evaluation: the evaluator registry (by dataset ``evaluator_type``) and extra evaluators."""

from . import evaluator_factories  # noqa: F401  (registers the built-in evaluator factories)
from .instance_evaluation import InstanceSegEvaluator, fast_coco_eval_available
from .registry import EVALUATOR_REGISTRY, EvaluatorFactory, build_evaluator

__all__ = [
    "EVALUATOR_REGISTRY",
    "EvaluatorFactory",
    "InstanceSegEvaluator",
    "build_evaluator",
    "fast_coco_eval_available",
]
