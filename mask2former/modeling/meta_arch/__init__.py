from .mask_former import MaskFormer  # noqa: F401  (registers "MaskFormer" in META_ARCH_REGISTRY)
from .test_time_augmentation import SemanticSegmentorWithTTA
from .video_mask_former import VideoMaskFormer, is_video_meta_architecture

__all__ = [
    "MaskFormer",
    "SemanticSegmentorWithTTA",
    "VideoMaskFormer",
    "is_video_meta_architecture",
]
