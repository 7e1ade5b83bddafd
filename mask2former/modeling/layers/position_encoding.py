# Sine position embeddings, from DETR (Carion et al., ECCV 2020, github.com/facebookresearch/detr,
# models/position_encoding.py): the 2-D one of Mask2Former's pixel decoder and transformer decoder
# (one definition, shared by both), and the 3-D (time, y, x) one of Video Mask2Former's transformer
# decoder (Cheng et al., "Mask2Former for Video Instance Segmentation", 2021).
import math
from typing import Optional

import torch
from torch import Tensor, nn


def sin_cos(phases: Tensor) -> Tensor:
    """Sine of the even and cosine of the odd channels, interleaved: [..., F] -> [..., F]."""
    return torch.stack((phases[..., 0::2].sin(), phases[..., 1::2].cos()), dim=-1).flatten(-2)


def wavelengths(num_feats: int, temperature: float, device: torch.device) -> Tensor:
    """[F] divisors ``temperature ** (2 * (i // 2) / F)`` of the sine embedding."""
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * (dim_t // 2) / num_feats)


class PositionEmbeddingSine(nn.Module):
    """The "Attention is all you need" sine/cosine embedding, generalised to images.

    Half of the channels encode the row (y) and half the column (x) coordinate. With
    ``normalize=True`` the cumulative coordinates are rescaled to ``[0, scale]`` over the valid
    (unpadded) area of each image.
    """

    def __init__(
        self,
        num_pos_feats: int = 64,
        temperature: int = 10000,
        normalize: bool = False,
        scale: Optional[float] = None,
    ):
        """
        Args:
            num_pos_feats: channels per coordinate; the output has ``2 * num_pos_feats`` channels.
            temperature: base of the geometric progression of wavelengths.
            normalize: rescale coordinates to ``[0, scale]``.
            scale: the normalised range, ``2 * pi`` by default; only valid with ``normalize``.
        """
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError(f"normalize should be True if scale is passed, got scale={scale}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            x: [B, C, H, W]; only its batch size, spatial size and device are used.
            mask: optional [B, H, W] bool, True at padded positions.
        Returns:
            [B, 2 * num_pos_feats, H, W] float32 (y channels first, then x).
        """
        if mask is None:
            mask = torch.zeros((x.size(0), x.size(2), x.size(3)), device=x.device, dtype=torch.bool)
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)  # [B, H, W]
        x_embed = not_mask.cumsum(2, dtype=torch.float32)  # [B, H, W]
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale

        dim_t = wavelengths(self.num_pos_feats, self.temperature, x.device)  # [F]
        pos_x = sin_cos(x_embed[:, :, :, None] / dim_t)  # [B, H, W, F]
        pos_y = sin_cos(y_embed[:, :, :, None] / dim_t)  # [B, H, W, F]
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)  # [B, 2F, H, W]

    def extra_repr(self) -> str:
        return (
            f"num_pos_feats={self.num_pos_feats}, temperature={self.temperature}, "
            f"normalize={self.normalize}, scale={self.scale}"
        )


class PositionEmbeddingSine3D(PositionEmbeddingSine):
    """Video Mask2Former's sine embedding of a clip: the 2-D embedding of (y, x) plus a sine
    embedding of the frame index t over all ``2 * num_pos_feats`` channels.

    Same arguments as :class:`PositionEmbeddingSine`; with ``normalize=True`` the frame index is
    also rescaled to ``[0, scale]`` over the clip.
    """

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        """
        Args:
            x: [B, T, C, H, W]; only its batch size, clip length, spatial size and device are
                used.
            mask: optional [B, T, H, W] bool, True at padded positions.
        Returns:
            [B, T, 2 * num_pos_feats, H, W] float32.
        """
        if x.dim() != 5:
            raise ValueError(f"PositionEmbeddingSine3D expects [B, T, C, H, W], got {x.shape}")
        if mask is None:
            b, t, _, h, w = x.shape
            mask = torch.zeros((b, t, h, w), device=x.device, dtype=torch.bool)
        not_mask = ~mask
        z_embed = not_mask.cumsum(1, dtype=torch.float32)  # [B, T, H, W]
        y_embed = not_mask.cumsum(2, dtype=torch.float32)  # [B, T, H, W]
        x_embed = not_mask.cumsum(3, dtype=torch.float32)  # [B, T, H, W]
        if self.normalize:
            eps = 1e-6
            z_embed = z_embed / (z_embed[:, -1:, :, :] + eps) * self.scale
            y_embed = y_embed / (y_embed[:, :, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, :, -1:] + eps) * self.scale

        dim_t = wavelengths(self.num_pos_feats, self.temperature, x.device)  # [F]
        dim_t_z = wavelengths(2 * self.num_pos_feats, self.temperature, x.device)  # [2F]
        pos_x = sin_cos(x_embed[..., None] / dim_t)  # [B, T, H, W, F]
        pos_y = sin_cos(y_embed[..., None] / dim_t)  # [B, T, H, W, F]
        pos_z = sin_cos(z_embed[..., None] / dim_t_z)  # [B, T, H, W, 2F]
        pos = torch.cat((pos_y, pos_x), dim=4) + pos_z  # [B, T, H, W, 2F]
        return pos.permute(0, 1, 4, 2, 3)  # [B, T, 2F, H, W]
