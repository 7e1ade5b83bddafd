"""Dataset mappers (dataset dict -> model input), chosen by ``cfg.INPUT.DATASET_MAPPER_NAME``."""

from .augmentations import ColorAugSSDTransform, build_lsj_augmentations
from .common import DatasetMapperBase
from .instance import MaskFormerInstanceDatasetMapper
from .lsj import COCOInstanceNewBaselineDatasetMapper, COCOPanopticNewBaselineDatasetMapper
from .panoptic import MaskFormerPanopticDatasetMapper
from .registry import DATASET_MAPPER_REGISTRY, build_dataset_mapper
from .semantic import MaskFormerSemanticDatasetMapper
from .video import (
    CLIP_MAPPER_NAMES,
    CocoClipDatasetMapper,
    YTVISDatasetMapper,
    build_video_dataset_mapper,
)

__all__ = [
    "CLIP_MAPPER_NAMES",
    "COCOInstanceNewBaselineDatasetMapper",
    "COCOPanopticNewBaselineDatasetMapper",
    "CocoClipDatasetMapper",
    "ColorAugSSDTransform",
    "DATASET_MAPPER_REGISTRY",
    "DatasetMapperBase",
    "MaskFormerInstanceDatasetMapper",
    "MaskFormerPanopticDatasetMapper",
    "MaskFormerSemanticDatasetMapper",
    "YTVISDatasetMapper",
    "build_dataset_mapper",
    "build_lsj_augmentations",
    "build_video_dataset_mapper",
]
