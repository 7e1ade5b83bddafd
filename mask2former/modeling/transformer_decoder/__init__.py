from ..layers import PositionEmbeddingSine  # re-exported at its official import path
from .masked_attention_decoder import MultiScaleMaskedTransformerDecoder
from .registry import TRANSFORMER_DECODER_REGISTRY, build_transformer_decoder
from .video_masked_attention_decoder import VideoMultiScaleMaskedTransformerDecoder

__all__ = [
    "TRANSFORMER_DECODER_REGISTRY",
    "MultiScaleMaskedTransformerDecoder",
    "PositionEmbeddingSine",
    "VideoMultiScaleMaskedTransformerDecoder",
    "build_transformer_decoder",
]
