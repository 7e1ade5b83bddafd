"""Dataset registration: generic ``register_*`` functions and the builtin Mask2Former datasets
(image and video).

Importing this package registers the builtin datasets (no file access; paths are resolved against
``$DETECTRON2_DATASETS`` when used). Names detectron2 registers itself are not registered again.
"""

from .builtin import register_all_builtin
from .builtin_video import register_all_video_builtin
from .dataset_root import RootRelativeMetadata, dataset_root
from .loaders import load_panoptic_json, load_semantic_dataset
from .lookup import check_registered
from .register import (
    panoptic_metadata,
    register_instance_dataset,
    register_panoptic_dataset,
    register_semantic_dataset,
    semantic_metadata,
    set_class_metadata,
)
from .ytvis import load_ytvis_json, register_ytvis_instances, ytvis_metadata

__all__ = [
    "RootRelativeMetadata",
    "check_registered",
    "dataset_root",
    "load_panoptic_json",
    "load_semantic_dataset",
    "load_ytvis_json",
    "panoptic_metadata",
    "register_all_builtin",
    "register_all_video_builtin",
    "register_instance_dataset",
    "register_panoptic_dataset",
    "register_semantic_dataset",
    "register_ytvis_instances",
    "ytvis_metadata",
    "semantic_metadata",
    "set_class_metadata",
]

register_all_builtin()
register_all_video_builtin()
