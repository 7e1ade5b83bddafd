"""Training criteria: the registry (:func:`build_criterion`), the official :class:`SetCriterion`
and its clip version :class:`VideoSetCriterion`."""

from .registry import CRITERION_REGISTRY, build_criterion
from .set_criterion import SetCriterion, weight_dict_from_config
from .video_set_criterion import VideoSetCriterion

__all__ = [
    "CRITERION_REGISTRY",
    "SetCriterion",
    "VideoSetCriterion",
    "build_criterion",
    "weight_dict_from_config",
]
