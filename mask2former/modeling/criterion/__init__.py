"""Training criteria: the registry (:func:`build_criterion`) and the official
:class:`SetCriterion`."""

from .registry import CRITERION_REGISTRY, build_criterion
from .set_criterion import SetCriterion, weight_dict_from_config

__all__ = ["CRITERION_REGISTRY", "SetCriterion", "build_criterion", "weight_dict_from_config"]
