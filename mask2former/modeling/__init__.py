"""The model, in the order of the paper's figure: backbone -> pixel decoder -> transformer
decoder -> (matcher, criterion) -> post-processing; Video Mask2Former reuses them with its own
meta-architecture, decoder and inference. Shared building blocks are in ``layers``.
Importing this package registers every component.
"""

from . import backbone, criterion, heads, meta_arch, pixel_decoder, transformer_decoder  # noqa: F401
from .backbone import D2SwinTransformer
from .criterion import build_criterion
from .heads import MaskFormerHead
from .meta_arch import MaskFormer, VideoMaskFormer
from .pixel_decoder import build_pixel_decoder
from .transformer_decoder import VideoMultiScaleMaskedTransformerDecoder, build_transformer_decoder

__all__ = [
    "D2SwinTransformer",
    "MaskFormer",
    "MaskFormerHead",
    "VideoMaskFormer",
    "VideoMultiScaleMaskedTransformerDecoder",
    "build_criterion",
    "build_pixel_decoder",
    "build_transformer_decoder",
]
