"""Mask2Former on Detectron2. ``import mask2former`` registers the model components (backbones, pixel
decoders, transformer decoders, head, meta-architecture) in their registries."""

from . import modeling  # noqa: F401
from .config import add_maskformer2_config, validate_maskformer2_config

__version__ = "0.1.0"
__all__ = ["add_maskformer2_config", "validate_maskformer2_config"]
