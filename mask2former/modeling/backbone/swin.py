# Swin Transformer backbone as a detectron2 `Backbone`.
#
# Swin Transformer: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
# Windows", ICCV 2021. Re-implemented after github.com/microsoft/Swin-Transformer (MIT License,
# Copyright (c) Microsoft Corporation) and its dense-prediction variant that Mask2Former ships as
# `D2SwinTransformer` (github.com/facebookresearch/Mask2Former, MIT License). Parameter and buffer
# names equal the official ones, so official and ImageNet Swin checkpoints load unchanged.
# The window attention is in `swin_attention.py`, the blocks and stages in `swin_blocks.py`.
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import Tensor, nn

# Re-exported, so the official module's names stay importable from here.
from .swin_attention import (
    SHIFT_MASK_VALUE,
    WindowAttention,
    relative_position_index,
    resize_relative_position_bias_table,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from .swin_blocks import BasicLayer, DropPath, Mlp, PatchEmbed, PatchMerging, SwinTransformerBlock

__all__ = [
    "SHIFT_MASK_VALUE",
    "BasicLayer",
    "DropPath",
    "Mlp",
    "PatchEmbed",
    "PatchMerging",
    "SwinTransformer",
    "SwinTransformerBlock",
    "D2SwinTransformer",
    "WindowAttention",
    "window_partition",
    "window_reverse",
    "relative_position_index",
    "shifted_window_mask",
    "resize_relative_position_bias_table",
]


class SwinTransformer(nn.Module):
    """Hierarchical Swin Transformer returning the normalised outputs of stages `out_indices`.

    Output `res{i+2}: [B, embed_dim * 2**i, ceil(H/(p*2**i)), ceil(W/(p*2**i))]` (strides
    4, 8, 16, 32 for patch 4). Weights use Swin's initialisation (truncated normal std 0.02 for
    Linear weights and the bias table, zero biases, unit LayerNorms); the official Mask2Former
    copy defines but never applies it.
    """

    def __init__(
        self,
        *,
        pretrain_img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
        ape: bool = False,
        patch_norm: bool = True,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(
                f"depths {list(depths)} and num_heads {list(num_heads)} differ in length"
            )
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        self.num_layers = len(depths)
        self.in_chans = in_chans
        self.out_indices = tuple(out_indices)
        self.num_features = [int(embed_dim * 2**i) for i in range(self.num_layers)]
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, patch_norm)
        self.ape = ape
        if ape:
            side = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, side, side))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        # stochastic depth rate grows linearly over all blocks
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList(
            BasicLayer(
                dim=self.num_features[i],
                depth=depths[i],
                num_heads=num_heads[i],
                window_size=window_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[sum(depths[:i]) : sum(depths[: i + 1])],
                downsample=i < self.num_layers - 1,
                use_checkpoint=use_checkpoint,
            )
            for i in range(self.num_layers)
        )
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """`x: [B, in_chans, H, W]` (any H, W) -> `{"res{i+2}": [B, C_i, H_i, W_i]}`."""
        if x.dim() != 4:
            raise ValueError(f"SwinTransformer takes an input of shape (N, C, H, W), got {x.shape}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"SwinTransformer expects {self.in_chans} channels, got {x.shape}")
        x = self.patch_embed(x)  # B, E, Wh, Ww
        height, width = x.shape[-2:]
        if self.ape:
            pos = F.interpolate(self.absolute_pos_embed, size=(height, width), mode="bicubic")
            x = x + pos  # B, E, Wh, Ww
        x = self.pos_drop(x.flatten(2).transpose(1, 2))  # B, Wh*Ww, E
        outs = {}
        for i, layer in enumerate(self.layers):
            out, x, next_h, next_w = layer(x, height, width)
            if i in self.out_indices:
                out = getattr(self, f"norm{i}")(out)  # B, H_i*W_i, C_i
                out = out.view(-1, height, width, self.num_features[i])  # B, H_i, W_i, C_i
                outs[f"res{i + 2}"] = out.permute(0, 3, 1, 2).contiguous()  # B, C_i, H_i, W_i
            height, width = next_h, next_w
        return outs


@BACKBONE_REGISTRY.register()
class D2SwinTransformer(SwinTransformer, Backbone):
    """`SwinTransformer` as a detectron2 backbone returning `out_features` among res2..res5.

    All four output norms (`norm0`..`norm3`) always exist, as in the official model, so official
    checkpoints load with no missing or unexpected keys whatever `out_features` is.
    """

    @configurable
    def __init__(self, *, out_features: Sequence[str], **swin_kwargs: Any) -> None:
        """`out_features`: subset of res2..res5; `swin_kwargs`: `SwinTransformer` arguments."""
        super().__init__(**swin_kwargs)
        names = [f"res{i + 2}" for i in range(self.num_layers)]
        unknown = [f for f in out_features if f not in names]
        if unknown:
            raise ValueError(f"Unknown Swin out_features {unknown}; available: {names}")
        self._out_features = list(out_features)
        self._out_feature_strides = {
            name: self.patch_embed.patch_size * 2**i for i, name in enumerate(names)
        }
        self._out_feature_channels = dict(zip(names, self.num_features))

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Optional[ShapeSpec] = None) -> Dict:
        if input_shape is not None and input_shape.channels not in (None, 3):
            raise ValueError(
                f"D2SwinTransformer needs 3 input channels, got {input_shape.channels} "
                "(len(MODEL.PIXEL_MEAN))"
            )
        swin = cfg.MODEL.SWIN
        return {
            "pretrain_img_size": swin.PRETRAIN_IMG_SIZE,
            "patch_size": swin.PATCH_SIZE,
            "in_chans": 3,
            "embed_dim": swin.EMBED_DIM,
            "depths": list(swin.DEPTHS),
            "num_heads": list(swin.NUM_HEADS),
            "window_size": swin.WINDOW_SIZE,
            "mlp_ratio": swin.MLP_RATIO,
            "qkv_bias": swin.QKV_BIAS,
            "qk_scale": swin.QK_SCALE,
            "drop_rate": swin.DROP_RATE,
            "attn_drop_rate": swin.ATTN_DROP_RATE,
            "drop_path_rate": swin.DROP_PATH_RATE,
            "ape": swin.APE,
            "patch_norm": swin.PATCH_NORM,
            "use_checkpoint": swin.USE_CHECKPOINT,
            "out_features": list(swin.OUT_FEATURES),
        }

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """`x: [B, 3, H, W]` -> `{name: [B, C, ceil(H/stride), ceil(W/stride)]}` (out_features)."""
        outputs = super().forward(x)
        return {k: v for k, v in outputs.items() if k in self._out_features}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }

    @property
    def size_divisibility(self) -> int:
        return 32
