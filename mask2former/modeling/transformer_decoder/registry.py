"""Registry of transformer decoders (the "predictor" of MaskFormerHead)."""

from detectron2.config import CfgNode
from detectron2.utils.registry import Registry
from torch import nn

# Official registry name, so configs naming "MultiScaleMaskedTransformerDecoder" keep working.
TRANSFORMER_DECODER_REGISTRY = Registry("TRANSFORMER_MODULE")
TRANSFORMER_DECODER_REGISTRY.__doc__ = """
Registry for transformer decoders, which turn multi-scale pixel-decoder features and per-pixel
mask features into class and mask predictions.

The registered object is called with `cfg, in_channels, mask_classification`.
"""


def build_transformer_decoder(
    cfg: CfgNode, in_channels: int, mask_classification: bool = True
) -> nn.Module:
    """Build the transformer decoder named by ``cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME``."""
    name = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    if name not in TRANSFORMER_DECODER_REGISTRY:
        registered = sorted(k for k, _ in TRANSFORMER_DECODER_REGISTRY)
        raise KeyError(
            f"Unknown MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME {name!r}; "
            f"registered transformer decoders: {registered}"
        )
    return TRANSFORMER_DECODER_REGISTRY.get(name)(cfg, in_channels, mask_classification)
