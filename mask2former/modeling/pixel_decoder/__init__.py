from .fpn import BasePixelDecoder, TransformerEncoderPixelDecoder
from .msdeformattn import MSDeformAttnPixelDecoder
from .registry import PIXEL_DECODER_REGISTRY, build_pixel_decoder, pixel_decoder_args

__all__ = [
    "PIXEL_DECODER_REGISTRY",
    "BasePixelDecoder",
    "MSDeformAttnPixelDecoder",
    "TransformerEncoderPixelDecoder",
    "build_pixel_decoder",
    "pixel_decoder_args",
]
