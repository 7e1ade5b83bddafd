# Swin Transformer backbone as a detectron2 `Backbone`.
#
# Swin Transformer: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
# Windows", ICCV 2021. Re-implemented after github.com/microsoft/Swin-Transformer (MIT License,
# Copyright (c) Microsoft Corporation) and its dense-prediction variant that Mask2Former ships as
# `D2SwinTransformer` (github.com/facebookresearch/Mask2Former, MIT License). Parameter and buffer
# names equal the official ones, so official and ImageNet Swin checkpoints load unchanged.
# The bicubic resizing of the relative position bias table follows the official Swin fine-tuning
# code (`utils.load_pretrained`).
import logging
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import Tensor, nn

__all__ = [
    "SwinTransformer",
    "D2SwinTransformer",
    "window_partition",
    "window_reverse",
    "relative_position_index",
    "shifted_window_mask",
    "resize_relative_position_bias_table",
]

logger = logging.getLogger(__name__)

# Value added to attention logits between tokens of different regions of a shifted window
# (the official code uses -100.0, not -inf).
SHIFT_MASK_VALUE = -100.0


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Split `x: [B, H, W, C]` (H, W multiples of window_size) into `[B*nW, ws, ws, C]` windows."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)  # B,h,ws,w,ws,C
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous()  # B,h,w,ws,ws,C (contiguous for the views after)
    return x.view(-1, window_size, window_size, c)  # B*nW,ws,ws,C


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of `window_partition`: `[B*nW, ws, ws, C]` -> `[B, height, width, C]`."""
    nh, nw = height // window_size, width // window_size
    c = windows.shape[-1]
    x = windows.view(-1, nh, nw, window_size, window_size, c)  # B,nh,nw,ws,ws,C
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)  # B,H,W,C


def relative_position_index(window_size: int) -> Tensor:
    """`[N, N]` int64 (N = ws*ws): row of the bias table for each (query, key) pair of a window.

    Entry = (dy + ws - 1) * (2ws - 1) + (dx + ws - 1) with (dy, dx) = query - key position.
    """
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ).flatten(1)  # 2, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # N, N, 2
    rel = rel + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]  # N, N


def shifted_window_mask(
    height: int, width: int, window_size: int, shift_size: int, device: torch.device
) -> Tensor:
    """Additive attention mask `[nW, N, N]` for the cyclically shifted (padded) map.

    `height`/`width` are the padded sizes (multiples of window_size). After the roll by
    -shift_size, the last window row/column holds tokens from both borders; the map is cut into
    3x3 regions and tokens of different regions get `SHIFT_MASK_VALUE` (0 otherwise).
    """
    img_mask = torch.zeros((1, height, width, 1), device=device)  # 1, Hp, Wp, 1
    slices = (
        slice(0, -window_size),
        slice(-window_size, -shift_size),
        slice(-shift_size, None),
    )
    label = 0
    for hs in slices:
        for ws in slices:
            img_mask[:, hs, ws, :] = label
            label += 1
    windows = window_partition(img_mask, window_size).view(-1, window_size * window_size)  # nW,N
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)  # nW, N, N
    return torch.zeros_like(diff).masked_fill(diff != 0, SHIFT_MASK_VALUE)


def resize_relative_position_bias_table(table: Tensor, window_size: int) -> Tensor:
    """Bicubically resize a bias table `[(2w-1)^2, nH]` to `[(2*window_size-1)^2, nH]`."""
    old_side = math.isqrt(table.shape[0])
    new_side = 2 * window_size - 1
    if old_side * old_side != table.shape[0]:
        raise ValueError(
            f"relative_position_bias_table of shape {tuple(table.shape)} is not square"
        )
    if old_side == new_side:
        return table
    num_heads = table.shape[1]
    grid = table.float().permute(1, 0).reshape(1, num_heads, old_side, old_side)  # 1,nH,L,L
    grid = F.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False)
    return grid.reshape(num_heads, new_side * new_side).permute(1, 0).to(table.dtype)  # L'^2,nH


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016): drop a residual branch per sample in training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample
        keep = x.new_empty(shape).bernoulli_(keep_prob)
        return x * keep / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class Mlp(nn.Module):
    """Two-layer feed-forward block `fc1 -> GELU -> drop -> fc2 -> drop`."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows of `window_size**2` tokens with relative bias.

    The `relative_position_bias_table` of a loaded state dict with another window size is resized
    bicubically (and the stored `relative_position_index` replaced by this module's own).
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )  # (2ws-1)^2, nH
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """`x: [B*nW, N, C]`, `mask: [nW, N, N]` additive or None -> `[B*nW, N, C]`."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads)  # B*nW,N,3,nH,d
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each B*nW, nH, N, d
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # N*N,nH
        bias = bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)  # 1, nH, N, N
        if mask is not None:
            nw = mask.shape[0]
            bias = bias + mask.unsqueeze(1)  # nW, nH, N, N
            bias = bias.repeat(bw // nw, 1, 1, 1)  # B*nW, nH, N, N (window index fastest)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias.to(q.dtype),
            dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale,
        )  # B*nW, nH, N, d
        out = out.transpose(1, 2).reshape(bw, n, c)  # B*nW, N, C
        return self.proj_drop(self.proj(out))

    def _load_from_state_dict(self, state_dict: Dict[str, Tensor], prefix: str, *args) -> None:
        table_key = prefix + "relative_position_bias_table"
        table = state_dict.get(table_key)
        if table is not None and table.shape != self.relative_position_bias_table.shape:
            logger.info(
                "Resizing %s from %s to %s (bicubic)",
                table_key,
                tuple(table.shape),
                tuple(self.relative_position_bias_table.shape),
            )
            state_dict[table_key] = resize_relative_position_bias_table(table, self.window_size)
            index_key = prefix + "relative_position_index"
            if index_key in state_dict:
                state_dict[index_key] = self.relative_position_index.clone()
        super()._load_from_state_dict(state_dict, prefix, *args)


class SwinTransformerBlock(nn.Module):
    """Pre-norm block: (shifted) window attention then MLP, each with a (drop-path) residual."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must be in [0, window_size={window_size})")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def window_attention(self, x: Tensor, shift_mask: Optional[Tensor]) -> Tensor:
        """`x: [B, H, W, C]` -> `[B, H, W, C]`: pad, shift, attend per window, unshift, crop.

        The zero padding (bottom/right, to multiples of the window) is not masked. `shift_mask`
        (`shifted_window_mask` of the padded size) is used only when the block is shifted.
        """
        b, h, w, c = x.shape
        ws, s = self.window_size, self.shift_size
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))  # B, Hp, Wp, C
        hp, wp = x.shape[1:3]
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws).view(-1, ws * ws, c)  # B*nW, N, C
        windows = self.attn(windows, mask=shift_mask if s > 0 else None)  # B*nW, N, C
        x = window_reverse(windows.view(-1, ws, ws, c), ws, hp, wp)  # B, Hp, Wp, C
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return x[:, :h, :w, :]  # B, H, W, C

    def forward(self, x: Tensor, height: int, width: int, shift_mask: Optional[Tensor]) -> Tensor:
        """`x: [B, H*W, C]` tokens of a `height x width` map -> `[B, H*W, C]`."""
        b, length, c = x.shape
        if length != height * width:
            raise ValueError(f"got {length} tokens for a {height}x{width} map")
        y = self.norm1(x).view(b, height, width, c)  # B, H, W, C
        y = self.window_attention(y, shift_mask).reshape(b, length, c)  # B, H*W, C
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _load_from_state_dict(self, state_dict: Dict[str, Tensor], prefix: str, *args) -> None:
        # The original Swin release stores the shift mask as a buffer; it is built at runtime here.
        state_dict.pop(prefix + "attn_mask", None)
        super()._load_from_state_dict(state_dict, prefix, *args)


class PatchMerging(nn.Module):
    """Concatenate 2x2 neighbourhoods (zero pad odd sides), LayerNorm, then Linear 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        """`x: [B, H*W, C]` -> `[B, ceil(H/2)*ceil(W/2), 2C]`."""
        b, _, c = x.shape
        x = x.view(b, height, width, c)  # B, H, W, C
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))  # B, H', W', C (even sides)
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )  # B, H'/2, W'/2, 4C
        x = x.view(b, -1, 4 * c)  # B, H'/2*W'/2, 4C
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One stage: `depth` blocks alternating regular and shifted windows, then optional merging."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: Optional[float],
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
        downsample: bool,
        use_checkpoint: bool,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim,
                num_heads,
                window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop,
                attn_drop=attn_drop,
                drop_path=drop_path[i],
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, height: int, width: int) -> Tuple[Tensor, Tensor, int, int]:
        """`x: [B, H*W, C]` -> (stage output `[B, H*W, C]`, next-stage input, its height, width).

        Without downsampling the next-stage input is the stage output and the size is unchanged.
        """
        shift_mask = None
        if self.shift_size > 0 and len(self.blocks) > 1:
            ws = self.window_size
            hp, wp = math.ceil(height / ws) * ws, math.ceil(width / ws) * ws
            shift_mask = shifted_window_mask(hp, wp, ws, self.shift_size, x.device).to(x.dtype)
        for block in self.blocks:
            if self.use_checkpoint and x.requires_grad:
                x = torch.utils.checkpoint.checkpoint(
                    block, x, height, width, shift_mask, use_reentrant=False
                )
            else:
                x = block(x, height, width, shift_mask)
        if self.downsample is None:
            return x, x, height, width
        return x, self.downsample(x, height, width), (height + 1) // 2, (width + 1) // 2


class PatchEmbed(nn.Module):
    """Non-overlapping `patch_size` conv (input zero padded to a multiple), optional LayerNorm."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, patch_norm: bool) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        """`x: [B, C_in, H, W]` -> `[B, E, ceil(H/p), ceil(W/p)]`."""
        p = self.patch_size
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))  # B, C_in, H', W'
        x = self.proj(x)  # B, E, Wh, Ww
        if self.norm is not None:
            x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # B, E, Wh, Ww
        return x


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
