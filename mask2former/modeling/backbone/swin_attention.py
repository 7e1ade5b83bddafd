# Shifted-window multi-head self-attention of the Swin Transformer: window partition, the
# relative position bias, the mask of a cyclically shifted map, and the attention module.
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
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.linear import linear

__all__ = [
    "SHIFT_MASK_VALUE",
    "WindowAttention",
    "relative_position_index",
    "resize_relative_position_bias_table",
    "shifted_window_mask",
    "window_partition",
    "window_reverse",
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
        qkv = linear(x, self.qkv.weight, self.qkv.bias)  # B*nW, N, 3*C
        qkv = qkv.reshape(bw, n, 3, self.num_heads, c // self.num_heads)  # B*nW, N, 3, nH, d
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
        return self.proj_drop(linear(out, self.proj.weight, self.proj.bias))

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
