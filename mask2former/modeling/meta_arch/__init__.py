from .mask_former import MaskFormer  # noqa: F401  (registers "MaskFormer" in META_ARCH_REGISTRY)
from .test_time_augmentation import SemanticSegmentorWithTTA

__all__ = ["MaskFormer", "SemanticSegmentorWithTTA"]
