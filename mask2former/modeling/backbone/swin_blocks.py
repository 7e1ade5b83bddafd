# Building blocks of the Swin Transformer: patch embedding, (shifted) window block, patch merging
# and a stage of blocks.
#
# Swin Transformer: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
# Windows", ICCV 2021. Re-implemented after github.com/microsoft/Swin-Transformer (MIT License,
# Copyright (c) Microsoft Corporation) and its dense-prediction variant that Mask2Former ships as
# `D2SwinTransformer` (github.com/facebookresearch/Mask2Former, MIT License). Parameter and buffer
# names equal the official ones, so official and ImageNet Swin checkpoints load unchanged.
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from ..layers.linear import linear, mlp
from .swin_attention import WindowAttention, shifted_window_mask, window_partition, window_reverse

__all__ = ["BasicLayer", "DropPath", "Mlp", "PatchEmbed", "PatchMerging", "SwinTransformerBlock"]


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
        if not (self.training and self.drop.p > 0):  # one function, saving less for training
            return mlp(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, "gelu")
        hidden = self.act(linear(x, self.fc1.weight, self.fc1.bias))
        return self.drop(linear(self.drop(hidden), self.fc2.weight, self.fc2.bias))


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
