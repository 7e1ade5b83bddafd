"""Mask2Former on Detectron2.

``import mask2former`` registers the model components (backbones, pixel decoders, transformer
decoders, head, meta-architecture), the builtin datasets (image and video) and the evaluators.
"""

from . import data, evaluation, modeling  # noqa: F401
from .config import add_maskformer2_config, validate_maskformer2_config
from .evaluation import InstanceSegEvaluator, YTVISEvaluator, build_evaluator
from .modeling.meta_arch import MaskFormer, SemanticSegmentorWithTTA, VideoMaskFormer
from .video_config import add_maskformer2_video_config, validate_maskformer2_video_config

__version__ = "0.1.0"
__all__ = [
    "InstanceSegEvaluator",
    "MaskFormer",
    "SemanticSegmentorWithTTA",
    "VideoMaskFormer",
    "YTVISEvaluator",
    "add_maskformer2_config",
    "add_maskformer2_video_config",
    "build_evaluator",
    "validate_maskformer2_config",
    "validate_maskformer2_video_config",
]
