# Sine position embedding for 2-D feature maps, from DETR (Carion et al., ECCV 2020,
# github.com/facebookresearch/detr, models/position_encoding.py), as used by Mask2Former's pixel
# decoder and transformer decoder (one definition, shared by both).
import math
from typing import Optional

import torch
from torch import Tensor, nn


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

        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)  # [F]

        pos_x = x_embed[:, :, :, None] / dim_t  # [B, H, W, F]
        pos_y = y_embed[:, :, :, None] / dim_t  # [B, H, W, F]
        # interleave sin (even) and cos (odd): [B, H, W, F/2, 2] -> [B, H, W, F]
        pos_x = torch.stack(
            (pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4
        ).flatten(3)
        pos_y = torch.stack(
            (pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4
        ).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)  # [B, 2F, H, W]

    def extra_repr(self) -> str:
        return (
            f"num_pos_feats={self.num_pos_feats}, temperature={self.temperature}, "
            f"normalize={self.normalize}, scale={self.scale}"
        )
