# Copyright (c) the mask2former authors.
"""The dataset root (``$DETECTRON2_DATASETS``, default ``datasets``), read when it is needed.

Builtin datasets are registered with paths relative to the root. The root is read each time a
loader runs or a path metadata field is accessed, never at import, so setting
``DETECTRON2_DATASETS`` after ``import mask2former`` takes effect.
"""

import copy
import os
from typing import Any, Dict

from detectron2.data import Metadata

__all__ = ["DATASET_ROOT_ENV", "RootRelativeMetadata", "dataset_root", "resolve_path"]

DATASET_ROOT_ENV = "DETECTRON2_DATASETS"


def dataset_root() -> str:
    """The current value of ``$DETECTRON2_DATASETS`` (``~`` expanded), or ``"datasets"``."""
    return os.path.expanduser(os.getenv(DATASET_ROOT_ENV, "datasets"))


def resolve_path(path: str, root_relative: bool) -> str:
    """``path`` joined to :func:`dataset_root` when ``root_relative``, else ``path`` itself."""
    return os.path.join(dataset_root(), path) if root_relative else path


class RootRelativeMetadata(Metadata):
    """Detectron2 :class:`Metadata` whose path fields are resolved against the dataset root on
    every access (e.g. ``meta.panoptic_json`` -> ``$DETECTRON2_DATASETS/coco/annotations/...``).

    The relative paths live in ``_root_relative_paths``; every other field behaves as usual.
    """

    def set_root_relative_paths(self, **paths: str) -> "RootRelativeMetadata":
        """Store path fields relative to the dataset root (``None`` values are stored as is)."""
        relative = dict(self.__dict__.get("_root_relative_paths", {}))
        relative.update(paths)
        object.__setattr__(self, "_root_relative_paths", relative)
        return self

    def __getattr__(self, key: str) -> Any:
        relative = self.__dict__.get("_root_relative_paths", {})
        if key in relative:
            path = relative[key]
            return None if path is None else os.path.join(dataset_root(), path)
        return super().__getattr__(key)

    def as_dict(self) -> Dict[str, Any]:
        """All metadata with the path fields resolved against the current root."""
        out = copy.copy(self.__dict__)
        relative = out.pop("_root_relative_paths", {})
        out.update({key: self.__getattr__(key) for key in relative})
        return out
