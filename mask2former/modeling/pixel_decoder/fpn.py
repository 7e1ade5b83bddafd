# FPN pixel decoders of MaskFormer (Cheng et al., NeurIPS 2021,
# github.com/facebookresearch/MaskFormer, also shipped with Mask2Former): a top-down FPN
# (Lin et al., CVPR 2017) without the bottom-up outputs, and a variant with a DETR transformer
# encoder (Carion et al., ECCV 2020) on the coarsest level. Module names follow the official code
# so official checkpoints load unchanged.
from typing import Dict, List, Optional, Tuple

import fvcore.nn.weight_init as weight_init
from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d, ShapeSpec
from torch import Tensor, nn

from ..layers import (
    NUM_MULTI_SCALE_FEATURES,
    PositionEmbeddingSine,
    TransformerEncoderLayer,
    add_fpn_convs,
    clone_layers,
    fpn_merge,
    output_conv,
    xavier_init_matrices,
)
from ..layers.fpn import Norm
from .registry import PIXEL_DECODER_REGISTRY, pixel_decoder_args


@PIXEL_DECODER_REGISTRY.register()
class BasePixelDecoder(nn.Module):
    """MaskFormer's FPN pixel decoder.

    ``forward_features`` returns ``(mask_features [B, mask_dim, H/4, W/4], None,
    multi_scale_features)`` with the 3 coarsest FPN outputs [B, conv_dim, H_l, W_l], coarse first.
    Keys: ``adapter_N`` / ``layer_N`` (N = 1 finest; the coarsest level has only ``layer_N``),
    ``mask_features``.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        conv_dim: int,
        mask_dim: int,
        norm: Norm = None,
    ):
        """
        Args:
            input_shape: channels and stride of the input features.
            conv_dim: channels of the FPN convs.
            mask_dim: channels of ``mask_features``.
            norm: norm of the FPN convs (a ``get_norm`` name such as "GN", or a callable).
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [k for k, _ in shapes]  # fine to coarse, "res2" .. "res5"
        channels = [v.channels for _, v in shapes]
        lateral_convs, output_convs = add_fpn_convs(self, channels[:-1], conv_dim, norm)
        # The coarsest level has no lateral conv; its output conv reads that level directly.
        coarsest = output_conv(self._coarsest_in_channels(channels[-1], conv_dim), conv_dim, norm)
        self.add_module(f"layer_{len(channels)}", coarsest)
        # Top-down order (low to high resolution). Plain lists: the modules are registered above.
        self.lateral_convs: List[Optional[Conv2d]] = [None, *lateral_convs]
        self.output_convs: List[Conv2d] = [coarsest, *output_convs]

        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=3, stride=1, padding=1)
        weight_init.c2_xavier_fill(self.mask_features)

    def _coarsest_in_channels(self, in_channels: int, conv_dim: int) -> int:
        """Input channels of the coarsest output conv (the coarsest backbone feature here)."""
        return in_channels

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Dict:
        return pixel_decoder_args(cfg, input_shape)

    def _coarsest(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Output of the coarsest level and the encoder features (None here)."""
        return self.output_convs[0](x), None

    def forward_features(
        self, features: Dict[str, Tensor]
    ) -> Tuple[Tensor, Optional[Tensor], List[Tensor]]:
        """
        Args:
            features: backbone features by name [B, C_l, H_l, W_l].
        Returns:
            mask_features [B, mask_dim, H/4, W/4], transformer-encoder features (None for this
            class) and 3 multi-scale features, coarse first.
        """
        names = self.in_features[::-1]  # coarse to fine
        y, encoder_features = self._coarsest(features[names[0]])
        multi_scale_features = [y]
        for idx, name in enumerate(names[1:], start=1):
            # nearest upsampling, as in FPN
            y = fpn_merge(
                self.lateral_convs[idx], self.output_convs[idx], features[name], y, "nearest"
            )
            if len(multi_scale_features) < NUM_MULTI_SCALE_FEATURES:
                multi_scale_features.append(y)
        return self.mask_features(y), encoder_features, multi_scale_features


class TransformerEncoder(nn.Module):
    """A stack of encoder layers (``layers.N``) with an optional final norm (pre-norm)."""

    def __init__(self, encoder_layer: nn.Module, num_layers: int, norm: Optional[nn.Module]):
        super().__init__()
        self.layers = clone_layers(encoder_layer, num_layers)
        self.norm = norm

    def forward(
        self, src: Tensor, key_padding_mask: Optional[Tensor] = None, pos: Optional[Tensor] = None
    ) -> Tensor:
        """src, pos: [S, B, C]; key_padding_mask: optional [B, S] bool. Returns [S, B, C]."""
        for layer in self.layers:
            src = layer(src, pos=pos, key_padding_mask=key_padding_mask)
        return src if self.norm is None else self.norm(src)


class TransformerEncoderOnly(nn.Module):
    """DETR transformer encoder on one feature map (key ``encoder.*``)."""

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        normalize_before: bool = False,
    ):
        super().__init__()
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, normalize_before)
        norm = nn.LayerNorm(d_model) if normalize_before else None
        self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        xavier_init_matrices(self)

    def forward(self, src: Tensor, mask: Optional[Tensor], pos_embed: Tensor) -> Tensor:
        """src, pos_embed: [B, C, H, W]; mask: optional [B, H, W] bool. Returns [B, C, H, W]."""
        bs, c, h, w = src.shape
        src = src.flatten(2).permute(2, 0, 1)  # [HW, B, C]
        pos_embed = pos_embed.flatten(2).permute(2, 0, 1)  # [HW, B, C]
        if mask is not None:
            mask = mask.flatten(1)  # [B, HW]
        memory = self.encoder(src, key_padding_mask=mask, pos=pos_embed)  # [HW, B, C]
        return memory.permute(1, 2, 0).view(bs, c, h, w)  # [B, C, H, W]


@PIXEL_DECODER_REGISTRY.register()
class TransformerEncoderPixelDecoder(BasePixelDecoder):
    """:class:`BasePixelDecoder` with a DETR transformer encoder on the coarsest feature.

    The encoder output [B, conv_dim, H/32, W/32] is returned as the transformer-encoder features;
    the coarsest output conv (``layer_N``) reads it, so it has conv_dim input channels.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        transformer_dropout: float,
        transformer_nheads: int,
        transformer_dim_feedforward: int,
        transformer_enc_layers: int,
        transformer_pre_norm: bool,
        conv_dim: int,
        mask_dim: int,
        norm: Norm = None,
    ):
        """
        Args:
            transformer_*: dropout, heads, FFN width, layers and pre-norm of the encoder.
            Others as in :class:`BasePixelDecoder`.
        """
        super().__init__(input_shape, conv_dim=conv_dim, mask_dim=mask_dim, norm=norm)
        coarsest = max(input_shape.values(), key=lambda s: s.stride)
        self.input_proj = Conv2d(coarsest.channels, conv_dim, kernel_size=1)
        weight_init.c2_xavier_fill(self.input_proj)
        self.transformer = TransformerEncoderOnly(
            d_model=conv_dim,
            nhead=transformer_nheads,
            num_encoder_layers=transformer_enc_layers,
            dim_feedforward=transformer_dim_feedforward,
            dropout=transformer_dropout,
            normalize_before=transformer_pre_norm,
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)

    def _coarsest_in_channels(self, in_channels: int, conv_dim: int) -> int:
        """The coarsest output conv reads the encoder output (conv_dim channels)."""
        return conv_dim

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Dict:
        ret = super().from_config(cfg, input_shape)
        mf = cfg.MODEL.MASK_FORMER
        ret["transformer_dropout"] = mf.DROPOUT
        ret["transformer_nheads"] = mf.NHEADS
        ret["transformer_dim_feedforward"] = mf.DIM_FEEDFORWARD
        ret["transformer_enc_layers"] = cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS
        ret["transformer_pre_norm"] = mf.PRE_NORM
        return ret

    def _coarsest(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        encoded = self.transformer(self.input_proj(x), None, self.pe_layer(x))  # [B, C, h, w]
        return self.output_convs[0](encoded), encoded
