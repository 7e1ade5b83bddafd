"""Registry of pixel decoders (unlike the official code, not mixed into SEM_SEG_HEADS_REGISTRY).

Pixel decoders registered the official way, in detectron2's ``SEM_SEG_HEADS_REGISTRY`` (as the
official ``ADVANCED_USAGE.md`` tells users to), are still found by :func:`build_pixel_decoder`.
"""

import logging
from typing import Any, Dict

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from detectron2.utils.registry import Registry
from torch import nn

from ..registry_utils import check_method, lookup

logger = logging.getLogger(__name__)

PIXEL_DECODER_REGISTRY = Registry("PIXEL_DECODER")
PIXEL_DECODER_REGISTRY.__doc__ = """
Registry for pixel decoders, which upsample backbone features into per-pixel mask features and
multi-scale features for the transformer decoder.

The registered object is called with `cfg, input_shape` and must implement
`forward_features(features) -> (mask_features, transformer_encoder_features, multi_scale_features)`.
"""

_CONFIG_KEY = "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME"


def pixel_decoder_args(cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Dict[str, Any]:
    """The constructor arguments every pixel decoder reads from the config: ``input_shape``
    (the features in ``MODEL.SEM_SEG_HEAD.IN_FEATURES``), ``conv_dim`` (``CONVS_DIM``),
    ``mask_dim`` (``MASK_DIM``) and ``norm`` (``NORM``). For a pixel decoder's ``from_config``."""
    head = cfg.MODEL.SEM_SEG_HEAD
    return {
        "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
        "conv_dim": head.CONVS_DIM,
        "mask_dim": head.MASK_DIM,
        "norm": head.NORM,
    }


def build_pixel_decoder(cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> nn.Module:
    """Build the pixel decoder named by ``cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME``.

    The name is looked up in :data:`PIXEL_DECODER_REGISTRY`, then in detectron2's
    ``SEM_SEG_HEADS_REGISTRY`` (where the official code registers pixel decoders).

    Args:
        cfg: the model config.
        input_shape: backbone output shapes by feature name.
    Raises:
        KeyError: the name is in neither registry.
        TypeError: the registered object does not implement ``forward_features``.
    """
    name = cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME
    if name not in PIXEL_DECODER_REGISTRY and name in SEM_SEG_HEADS_REGISTRY:
        logger.info(
            "Pixel decoder %r found in detectron2's SEM_SEG_HEADS_REGISTRY (the official "
            "Mask2Former's place for pixel decoders), not in PIXEL_DECODER_REGISTRY",
            name,
        )
        decoder_cls = SEM_SEG_HEADS_REGISTRY.get(name)
    else:
        decoder_cls = lookup(PIXEL_DECODER_REGISTRY, name, _CONFIG_KEY, "pixel decoders")
    if isinstance(decoder_cls, type):  # e.g. MaskFormerHead itself is not a pixel decoder
        check_method(decoder_cls, "forward_features", name, "Pixel decoder")
    model = decoder_cls(cfg, input_shape)
    check_method(model, "forward_features", name, "Pixel decoder")
    return model
