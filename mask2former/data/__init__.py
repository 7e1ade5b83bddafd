"""Data: dataset registration (importing this package registers the builtin datasets) and the
dataset mappers."""

from . import datasets  # noqa: F401  (registers the builtin datasets)
from .bad_samples import SkippedSampleCounter
from .datasets import (
    check_registered,
    register_instance_dataset,
    register_panoptic_dataset,
    register_semantic_dataset,
    register_ytvis_instances,
)
from .mappers import DATASET_MAPPER_REGISTRY, build_dataset_mapper, build_video_dataset_mapper

__all__ = [
    "DATASET_MAPPER_REGISTRY",
    "SkippedSampleCounter",
    "build_dataset_mapper",
    "build_video_dataset_mapper",
    "check_registered",
    "register_instance_dataset",
    "register_panoptic_dataset",
    "register_semantic_dataset",
    "register_ytvis_instances",
]
