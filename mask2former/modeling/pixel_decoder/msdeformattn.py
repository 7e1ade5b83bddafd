# Multi-scale deformable-attention pixel decoder of Mask2Former (Cheng et al., CVPR 2022,
# github.com/facebookresearch/Mask2Former): a Deformable DETR encoder (Zhu et al., ICLR 2021,
# github.com/fundamentalvision/Deformable-DETR) over the coarse backbone levels, followed by an FPN
# (Lin et al., CVPR 2017) top-down path to stride 4. Module names follow the official code so
# official checkpoints load unchanged.
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import fvcore.nn.weight_init as weight_init
import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d, ShapeSpec
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers import (
    NUM_MULTI_SCALE_FEATURES,
    EncoderLayer,
    PositionEmbeddingSine,
    add_fpn_convs,
    clone_layers,
    fpn_merge,
    with_pos,
    xavier_init_matrices,
)
from ..layers.fpn import Norm
from .ops import MSDeformAttn
from .registry import PIXEL_DECODER_REGISTRY, pixel_decoder_args


class MSDeformAttnTransformerEncoderLayer(EncoderLayer):
    """Post-norm encoder layer: deformable self-attention over all levels, then an FFN.

    Keys as the official: ``self_attn`` (an :class:`MSDeformAttn`), ``norm1``, ``linear1``,
    ``linear2``, ``norm2``.
    """

    def __init__(
        self,
        d_model: int = 256,
        d_ffn: int = 1024,
        dropout: float = 0.1,
        n_levels: int = 4,
        n_heads: int = 8,
        n_points: int = 4,
    ):
        """
        Args:
            d_model: token width C; d_ffn: hidden width of the FFN.
            dropout: dropout inside the FFN and on both sublayer outputs.
            n_levels, n_heads, n_points: feature levels, heads and sampling points per head and
                level of the deformable attention.
        """
        attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        super().__init__(attn, d_model, d_ffn, dropout, normalize_before=False)

    def self_attention(
        self,
        x: Tensor,
        pos: Optional[Tensor],
        reference_points: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            x, pos: [B, S, C] with S = sum_l H_l*W_l.
            reference_points: [B, S, L, 2] normalised (x, y).
            spatial_shapes: [L, 2] int64; level_start_index: [L] int64.
            padding_mask: optional [B, S] bool, True at padding.
        Returns:
            [B, S, C]
        """
        return self.self_attn(
            with_pos(x, pos), reference_points, x, spatial_shapes, level_start_index, padding_mask
        )


class MSDeformAttnTransformerEncoder(nn.Module):
    """A stack of :class:`MSDeformAttnTransformerEncoderLayer` (``layers.N`` as in the official)."""

    def __init__(self, encoder_layer: nn.Module, num_layers: int):
        super().__init__()
        self.layers = clone_layers(encoder_layer, num_layers)

    @staticmethod
    def get_reference_points(
        spatial_shapes: Union[Tensor, Sequence[Tuple[int, int]]], valid_ratios: Tensor
    ) -> Tensor:
        """Pixel centres of every level, normalised by the valid (unpadded) extent.

        Args:
            spatial_shapes: [L, 2] int64 (H_l, W_l), or the L (H_l, W_l) as host integers (no
                device read).
            valid_ratios: [B, L, 2] valid fraction (w, h) of each level.
        Returns:
            [B, S, L, 2] (x, y) reference points, S = sum_l H_l*W_l.
        """
        if isinstance(spatial_shapes, Tensor):
            spatial_shapes = spatial_shapes.tolist()
        device = valid_ratios.device
        reference_points_list = []
        for lvl, (h, w) in enumerate(spatial_shapes):
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                indexing="ij",
            )  # [H, W] each
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)  # [B, H*W]
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)  # [B, H*W]
            reference_points_list.append(torch.stack((ref_x, ref_y), -1))  # [B, H*W, 2]
        reference_points = torch.cat(reference_points_list, 1)  # [B, S, 2]
        return reference_points[:, :, None] * valid_ratios[:, None]  # [B, S, L, 2]

    def forward(
        self,
        src: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        valid_ratios: Tensor,
        pos: Tensor,
        padding_mask: Optional[Tensor] = None,
        reference_points: Optional[Tensor] = None,
    ) -> Tensor:
        """Shapes as in :class:`MSDeformAttnTransformerEncoderLayer`; returns [B, S, C].
        ``reference_points`` [B, S, L, 2]: :meth:`get_reference_points`, computed if not given."""
        if reference_points is None:
            reference_points = self.get_reference_points(spatial_shapes, valid_ratios)
        output = src
        for layer in self.layers:
            output = layer(
                output,
                pos,
                reference_points=reference_points,
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index,
                padding_mask=padding_mask,
            )
        return output


class MSDeformAttnTransformerEncoderOnly(nn.Module):
    """Deformable DETR encoder over several feature levels, with a learned per-level embedding."""

    def __init__(
        self,
        d_model: int = 256,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.1,
        num_feature_levels: int = 4,
        enc_n_points: int = 4,
    ):
        super().__init__()
        encoder_layer = MSDeformAttnTransformerEncoderLayer(
            d_model, dim_feedforward, dropout, num_feature_levels, nhead, enc_n_points
        )
        self.encoder = MSDeformAttnTransformerEncoder(encoder_layer, num_encoder_layers)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        xavier_init_matrices(self)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    @staticmethod
    def get_valid_ratio(mask: Tensor) -> Tensor:
        """[B, H, W] bool padding mask -> [B, 2] valid fraction (w, h)."""
        _, h, w = mask.shape
        valid_h = torch.sum(~mask[:, :, 0], 1)  # [B]
        valid_w = torch.sum(~mask[:, 0, :], 1)  # [B]
        return torch.stack([valid_w.float() / w, valid_h.float() / h], -1)  # [B, 2]

    def forward(
        self, srcs: List[Tensor], pos_embeds: List[Tensor], masks: Optional[List[Tensor]] = None
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            srcs, pos_embeds: per level [B, C, H_l, W_l].
            masks: optional per level [B, H_l, W_l] bool, True at padding. The official
                Mask2Former passes none (the padded area counts as valid); that is the default.
        Returns:
            memory [B, S, C], spatial_shapes [L, 2] int64, level_start_index [L] int64.
        """
        if masks is None:
            masks = [
                torch.zeros((x.size(0), x.size(2), x.size(3)), device=x.device, dtype=torch.bool)
                for x in srcs
            ]
        src_flatten, mask_flatten, lvl_pos_embed_flatten, shapes = [], [], [], []
        for lvl, (src, mask, pos_embed) in enumerate(zip(srcs, masks, pos_embeds)):
            shapes.append(src.shape[-2:])
            src_flatten.append(src.flatten(2).transpose(1, 2))  # [B, H*W, C]
            mask_flatten.append(mask.flatten(1))  # [B, H*W]
            pos_embed = pos_embed.flatten(2).transpose(1, 2)  # [B, H*W, C]
            lvl_pos_embed_flatten.append(
                pos_embed + self.level_embed[lvl].view(1, 1, -1)
            )  # [B, H*W, C]
        src_flatten = torch.cat(src_flatten, 1)  # [B, S, C]
        mask_flatten = torch.cat(mask_flatten, 1)  # [B, S]
        lvl_pos_embed_flatten = torch.cat(lvl_pos_embed_flatten, 1)  # [B, S, C]
        # Copied to the device without waiting for it (no host-device synchronisation).
        spatial_shapes = torch.tensor(shapes, dtype=torch.long).to(
            src_flatten.device, non_blocking=True
        )  # [L, 2]
        level_start_index = torch.cat(
            (spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1])
        )  # [L]
        valid_ratios = torch.stack([self.get_valid_ratio(m) for m in masks], 1)  # [B, L, 2]
        reference_points = self.encoder.get_reference_points(
            [(int(h), int(w)) for h, w in shapes], valid_ratios
        )  # [B, S, L, 2]

        memory = self.encoder(
            src_flatten,
            spatial_shapes,
            level_start_index,
            valid_ratios,
            lvl_pos_embed_flatten,
            mask_flatten,
            reference_points=reference_points,
        )
        return memory, spatial_shapes, level_start_index


@PIXEL_DECODER_REGISTRY.register()
class MSDeformAttnPixelDecoder(nn.Module):
    """Deformable-attention encoder on the coarse levels plus an FPN path to ``common_stride``.

    Keys as the official: ``input_proj``, ``transformer``, ``mask_features``, ``adapter_N`` /
    ``layer_N`` (the FPN levels finer than the encoder's inputs).

    ``forward_features`` returns ``(mask_features, transformer_encoder_features,
    multi_scale_features)``:

    * ``mask_features``: [B, mask_dim, H/4, W/4] per-pixel embeddings;
    * ``transformer_encoder_features``: [B, conv_dim, H/32, W/32], the coarsest encoder output;
    * ``multi_scale_features``: 3 tensors [B, conv_dim, H_l, W_l], coarse first (1/32, 1/16, 1/8).
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
        transformer_n_points: int = 4,
        conv_dim: int,
        mask_dim: int,
        norm: Norm = None,
        transformer_in_features: List[str],
        common_stride: int,
    ):
        """
        Args:
            input_shape: channels and stride of every input feature used by the decoder.
            transformer_dropout: dropout in the deformable encoder.
            transformer_nheads: attention heads in the deformable encoder.
            transformer_dim_feedforward: FFN width of the encoder (1024 in the official model).
            transformer_enc_layers: number of deformable encoder layers.
            transformer_n_points: sampling points per head and level.
            conv_dim: channels of the encoder and of the FPN convs.
            mask_dim: channels of ``mask_features``.
            norm: norm of the FPN convs (a ``get_norm`` name such as "GN", or a callable).
            transformer_in_features: input features the encoder attends over (e.g. res3..res5).
            common_stride: stride of ``mask_features``; FPN levels are added down to it.
        """
        super().__init__()
        missing = [f for f in transformer_in_features if f not in input_shape]
        if missing:
            raise ValueError(
                f"transformer_in_features {missing} are not among the input features "
                f"{sorted(input_shape)}"
            )
        # All inputs and the encoder inputs, fine to coarse (res2 -> res5).
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [k for k, _ in shapes]
        enc_shapes = [(k, v) for k, v in shapes if k in transformer_in_features]
        self.transformer_in_features = [k for k, _ in enc_shapes]

        # Input projections, coarse to fine (res5 -> res3).
        self.input_proj = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(v.channels, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim)
            )
            for _, v in enc_shapes[::-1]
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)

        self.transformer = MSDeformAttnTransformerEncoderOnly(
            d_model=conv_dim,
            nhead=transformer_nheads,
            num_encoder_layers=transformer_enc_layers,
            dim_feedforward=transformer_dim_feedforward,
            dropout=transformer_dropout,
            num_feature_levels=len(enc_shapes),
            enc_n_points=transformer_n_points,
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)

        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1, stride=1, padding=0)
        weight_init.c2_xavier_fill(self.mask_features)

        # FPN levels for the inputs finer than the encoder's finest level (res2 for stride 4).
        encoder_stride = min(v.stride for _, v in enc_shapes)
        self.num_fpn_levels = int(math.log2(encoder_stride) - math.log2(common_stride))
        fpn_channels = [v.channels for _, v in shapes[: self.num_fpn_levels]]
        # Top-down order (low to high resolution); registered as adapter_N / layer_N.
        self.lateral_convs, self.output_convs = add_fpn_convs(self, fpn_channels, conv_dim, norm)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Dict:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            **pixel_decoder_args(cfg, input_shape),
            # As official: the encoder takes its dropout and heads from MODEL.MASK_FORMER, and
            # SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS is not read.
            "transformer_dropout": cfg.MODEL.MASK_FORMER.DROPOUT,
            "transformer_nheads": cfg.MODEL.MASK_FORMER.NHEADS,
            # The official code hard-codes 1024 (the key's default) and ignores
            # MODEL.MASK_FORMER.DIM_FEEDFORWARD here.
            "transformer_dim_feedforward": head.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD,
            "transformer_enc_layers": head.TRANSFORMER_ENC_LAYERS,
            "transformer_n_points": head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS,
            "transformer_in_features": head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES,
            "common_stride": head.COMMON_STRIDE,
        }

    def forward_features(
        self, features: Dict[str, Tensor], padding_mask: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """
        Args:
            features: backbone features by name, e.g. ``res2``..``res5`` [B, C_l, H_l, W_l].
            padding_mask: optional [B, H, W] bool (True at padding, any resolution), resized to
                each encoder level. The official model passes none: padding counts as valid.
        Returns:
            mask_features [B, mask_dim, H/4, W/4], the coarsest encoder output
            [B, conv_dim, H/32, W/32] and 3 multi-scale features, coarse first.
        """
        device_type = next(iter(features.values())).device.type
        # Under float16 autocast the decoder runs in float32, as the official one (its decorator
        # autocast(enabled=False)): float16 overflows in the encoder. bfloat16 has float32's range
        # and stays on, except for the deformable attention's sampling locations and softmax,
        # which MSDeformAttn computes in float32.
        bf16 = (
            torch.is_autocast_enabled(device_type)
            and torch.get_autocast_dtype(device_type) == torch.bfloat16
        )
        with torch.autocast(device_type=device_type, enabled=bf16):
            return self._forward_features(features, padding_mask)

    def _forward_features(
        self, features: Dict[str, Tensor], padding_mask: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        srcs, pos, masks = [], [], None if padding_mask is None else []
        for idx, f in enumerate(self.transformer_in_features[::-1]):  # coarse to fine
            x = features[f].float()
            mask = None
            if masks is not None:
                mask = F.interpolate(padding_mask[:, None].float(), size=x.shape[-2:])[:, 0] > 0.5
                masks.append(mask)  # [B, H_l, W_l]
            srcs.append(self.input_proj[idx](x))
            pos.append(self.pe_layer(x, mask))

        y, _, _ = self.transformer(srcs, pos, masks)  # [B, S, C]
        bs = y.shape[0]
        shapes = [tuple(src.shape[-2:]) for src in srcs]  # host values: no device read
        out = [
            # [B, S_l, C] -> [B, C, H_l, W_l], channels-last strides. The official
            # transpose(1, 2).view(...) gives the same values, but for B = 1 a batch stride of C,
            # with which F.interpolate takes a slow path (7x slower at 1/8 of 800x1088).
            z.reshape(bs, h, w, -1).permute(0, 3, 1, 2)
            for z, (h, w) in zip(torch.split(y, [h * w for h, w in shapes], dim=1), shapes)
        ]

        # Extra FPN levels, top-down (low to high resolution).
        for idx, f in enumerate(self.in_features[: self.num_fpn_levels][::-1]):
            x = features[f].float()
            out.append(
                fpn_merge(self.lateral_convs[idx], self.output_convs[idx], x, out[-1], "bilinear")
            )

        multi_scale_features = out[:NUM_MULTI_SCALE_FEATURES]
        return self.mask_features(out[-1]), out[0], multi_scale_features
