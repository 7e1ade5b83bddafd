"""Evaluation: the evaluator registry (by dataset ``evaluator_type``) and extra evaluators."""

from . import evaluator_factories  # noqa: F401  (registers the built-in evaluator factories)
from .instance_evaluation import InstanceSegEvaluator, fast_coco_eval_available
from .panoptic_evaluation import PanopticSegEvaluator
from .registry import EVALUATOR_REGISTRY, EvaluatorFactory, build_evaluator
from .semantic_evaluation import SemanticSegEvaluator
from .ytvis_eval import YTVISEvalResult, evaluate_ytvis
from .ytvis_evaluation import YTVISEvaluator, video_output_to_ytvis_results

__all__ = [
    "EVALUATOR_REGISTRY",
    "EvaluatorFactory",
    "InstanceSegEvaluator",
    "PanopticSegEvaluator",
    "SemanticSegEvaluator",
    "YTVISEvalResult",
    "YTVISEvaluator",
    "build_evaluator",
    "evaluate_ytvis",
    "fast_coco_eval_available",
    "video_output_to_ytvis_results",
]
