"""Dataset registration: generic ``register_*`` functions and the builtin Mask2Former datasets.

Importing this package registers the builtin datasets (no file access; paths are resolved against
``$DETECTRON2_DATASETS`` when used). Names detectron2 registers itself are not registered again.
"""

from .builtin import register_all_builtin
from .dataset_root import RootRelativeMetadata, dataset_root
from .loaders import load_panoptic_json, load_semantic_dataset
from .register import (
    panoptic_metadata,
    register_instance_dataset,
    register_panoptic_dataset,
    register_semantic_dataset,
    semantic_metadata,
    set_class_metadata,
)

__all__ = [
    "RootRelativeMetadata",
    "dataset_root",
    "load_panoptic_json",
    "load_semantic_dataset",
    "panoptic_metadata",
    "register_all_builtin",
    "register_instance_dataset",
    "register_panoptic_dataset",
    "register_semantic_dataset",
    "semantic_metadata",
    "set_class_metadata",
]

register_all_builtin()
