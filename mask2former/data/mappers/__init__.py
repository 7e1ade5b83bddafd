"""Dataset mappers (dataset dict -> model input), chosen by ``cfg.INPUT.DATASET_MAPPER_NAME``."""

from .augmentations import ColorAugSSDTransform, build_lsj_augmentations
from .common import DatasetMapperBase
from .instance import MaskFormerInstanceDatasetMapper
from .lsj import COCOInstanceNewBaselineDatasetMapper, COCOPanopticNewBaselineDatasetMapper
from .panoptic import MaskFormerPanopticDatasetMapper
from .registry import DATASET_MAPPER_REGISTRY, build_dataset_mapper
from .semantic import MaskFormerSemanticDatasetMapper

__all__ = [
    "COCOInstanceNewBaselineDatasetMapper",
    "COCOPanopticNewBaselineDatasetMapper",
    "ColorAugSSDTransform",
    "DATASET_MAPPER_REGISTRY",
    "DatasetMapperBase",
    "MaskFormerInstanceDatasetMapper",
    "MaskFormerPanopticDatasetMapper",
    "MaskFormerSemanticDatasetMapper",
    "build_dataset_mapper",
    "build_lsj_augmentations",
]
