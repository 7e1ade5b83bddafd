# Copyright (c) the mask2former authors.
"""Registry of dataset mappers, chosen by ``cfg.INPUT.DATASET_MAPPER_NAME``.

Registered names are the official Mask2Former ones: ``coco_instance_lsj``, ``coco_panoptic_lsj``,
``mask_former_semantic``, ``mask_former_panoptic``, ``mask_former_instance``; and the clip mappers
of Video Mask2Former (which the official code picks by dataset name, without a config value):
``ytvis_clip`` (``YTVISDatasetMapper``) and ``coco_clip`` (``CocoClipDatasetMapper``).
"""

from typing import Any, Callable, Dict, TypeVar

from detectron2.config import CfgNode
from detectron2.utils.registry import Registry

from ...utils.suggestions import UnknownNameError, did_you_mean

__all__ = ["DATASET_MAPPER_REGISTRY", "build_dataset_mapper"]

MapperClass = TypeVar("MapperClass", bound=type)


class _NamedRegistry(Registry):
    """A detectron2 :class:`Registry` whose keys are given names (config values), not class
    names."""

    def register_as(self, name: str) -> Callable[[MapperClass], MapperClass]:
        def decorator(cls: MapperClass) -> MapperClass:
            self._do_register(name, cls)
            return cls

        return decorator


DATASET_MAPPER_REGISTRY = _NamedRegistry("DATASET_MAPPER")
DATASET_MAPPER_REGISTRY.__doc__ = """
Dataset mappers: callables ``dataset_dict -> model input dict`` built as ``Mapper(cfg, is_train)``
and keyed by ``cfg.INPUT.DATASET_MAPPER_NAME``.
"""


def build_dataset_mapper(cfg: CfgNode, is_train: bool = True) -> Callable[[Dict], Dict[str, Any]]:
    """The mapper named by ``cfg.INPUT.DATASET_MAPPER_NAME``, built from ``cfg``."""
    name = cfg.INPUT.DATASET_MAPPER_NAME
    if name not in DATASET_MAPPER_REGISTRY:
        registered = sorted(key for key, _ in DATASET_MAPPER_REGISTRY)
        raise UnknownNameError(
            f"Unknown INPUT.DATASET_MAPPER_NAME {name!r}{did_you_mean(name, registered)} "
            f"(registered dataset mappers: {registered})"
        )
    return DATASET_MAPPER_REGISTRY.get(name)(cfg, is_train)
