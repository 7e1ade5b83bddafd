"""The model, in the order of the paper's figure: backbone -> pixel decoder -> transformer
decoder -> (matcher, criterion) -> post-processing. Shared building blocks are in ``layers``.
Importing this package registers every component.
"""

from . import backbone, criterion, heads, meta_arch, pixel_decoder, transformer_decoder  # noqa: F401
from .backbone import D2SwinTransformer
from .criterion import build_criterion
from .heads import MaskFormerHead
from .meta_arch import MaskFormer
from .pixel_decoder import build_pixel_decoder
from .transformer_decoder import build_transformer_decoder

__all__ = [
    "D2SwinTransformer",
    "MaskFormer",
    "MaskFormerHead",
    "build_criterion",
    "build_pixel_decoder",
    "build_transformer_decoder",
]
