"""Registry of transformer decoders (the "predictor" of MaskFormerHead)."""

from detectron2.config import CfgNode
from detectron2.utils.registry import Registry
from torch import nn

from ..registry_utils import lookup

# Official registry name, so configs naming "MultiScaleMaskedTransformerDecoder" keep working.
TRANSFORMER_DECODER_REGISTRY = Registry("TRANSFORMER_MODULE")
TRANSFORMER_DECODER_REGISTRY.__doc__ = """
Registry for transformer decoders, which turn multi-scale pixel-decoder features and per-pixel
mask features into class and mask predictions.

The registered object is called with `cfg, in_channels` and returns a module whose
`forward(multi_scale_features, mask_features)` returns `pred_logits`, `pred_masks` and
`aux_outputs`.
"""


def build_transformer_decoder(
    cfg: CfgNode, in_channels: int, mask_classification: bool = True
) -> nn.Module:
    """Build the transformer decoder named by ``cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME``.

    Args:
        cfg: the model config.
        in_channels: channels of the features the decoder reads.
        mask_classification: kept for the official call signature; only mask classification
            (True) is supported.
    Raises:
        KeyError: the name is not registered.
        ValueError: ``mask_classification`` is False.
    """
    if not mask_classification:
        raise ValueError(
            "build_transformer_decoder: mask_classification=False (per-pixel classification) "
            "is not supported; Mask2Former's decoders classify masks"
        )
    name = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    config_key = "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME"
    return lookup(TRANSFORMER_DECODER_REGISTRY, name, config_key, "transformer decoders")(
        cfg, in_channels
    )
