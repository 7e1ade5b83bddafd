# Multi-scale deformable attention module, from Deformable DETR (Zhu et al., ICLR 2021,
# github.com/fundamentalvision/Deformable-DETR, Apache-2.0), as used by Mask2Former's pixel decoder.
# Parameter names and initialisation follow the original so official checkpoints load unchanged.
import math
import warnings

import torch
from torch import Tensor, nn
from torch.nn.init import constant_, xavier_uniform_

from ...layers.linear import linear
from .functions import ms_deform_attn


def _is_power_of_2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention.

    Each query attends to ``n_points`` sampled locations around its reference point in each of
    ``n_levels`` feature maps, with ``n_heads`` heads; offsets and weights are predicted from the
    query.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model must be divisible by n_heads, got {d_model} and {n_heads}")
        if not _is_power_of_2(d_model // n_heads):
            warnings.warn(
                "MSDeformAttn: d_model / n_heads is not a power of 2, which is slower in the CUDA "
                "kernel",
                stacklevel=2,
            )
        self.im2col_step = 128
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points

        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        constant_(self.sampling_offsets.weight.data, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid_init = torch.stack([thetas.cos(), thetas.sin()], -1)  # [M, 2]
        grid_init = (
            (grid_init / grid_init.abs().max(-1, keepdim=True)[0])
            .view(self.n_heads, 1, 1, 2)
            .repeat(1, self.n_levels, self.n_points, 1)
        )  # [M, L, P, 2]
        for i in range(self.n_points):
            grid_init[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias = nn.Parameter(grid_init.view(-1))
        constant_(self.attention_weights.weight.data, 0.0)
        constant_(self.attention_weights.bias.data, 0.0)
        xavier_uniform_(self.value_proj.weight.data)
        constant_(self.value_proj.bias.data, 0.0)
        xavier_uniform_(self.output_proj.weight.data)
        constant_(self.output_proj.bias.data, 0.0)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        input_flatten: Tensor,
        input_spatial_shapes: Tensor,
        input_level_start_index: Tensor,
        input_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """
        Args:
            query: [N, Lq, C]
            reference_points: [N, Lq, L, 2] in [0, 1] (top-left (0,0), bottom-right (1,1)), or
                [N, Lq, L, 4] boxes (cx, cy, w, h).
            input_flatten: [N, sum_l H_l*W_l, C], the levels flattened and concatenated.
            input_spatial_shapes: [L, 2] int64, (H_l, W_l) per level.
            input_level_start_index: [L] int64, offset of each level in ``input_flatten``.
            input_padding_mask: [N, sum_l H_l*W_l] bool, True at padding (its values are zeroed).
        Returns:
            [N, Lq, C]
        """
        N, Len_q, _ = query.shape
        N, Len_in, _ = input_flatten.shape
        # The level layout (spatial shapes vs Len_in) is checked by the op, without a host read.
        value = linear(input_flatten, self.value_proj.weight, self.value_proj.bias)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        # [N, Len_in, C] -> [N, Len_in, M, D]
        value = value.view(N, Len_in, self.n_heads, self.d_model // self.n_heads)
        # Offsets and attention logits from one matrix product over the queries.
        num_offsets = self.sampling_offsets.out_features
        projected = linear(
            query,
            torch.cat([self.sampling_offsets.weight, self.attention_weights.weight]),
            torch.cat([self.sampling_offsets.bias, self.attention_weights.bias]),
        ).float()  # [N, Lq, M*L*P*3]; coordinates and softmax in float32, also under autocast
        sampling_offsets = projected[..., :num_offsets].view(
            N, Len_q, self.n_heads, self.n_levels, self.n_points, 2
        )  # [N, Lq, M, L, P, 2]
        attention_weights = projected[..., num_offsets:].view(
            N, Len_q, self.n_heads, self.n_levels * self.n_points
        )  # [N, Lq, M, L*P]
        attention_weights = attention_weights.softmax(-1).view(
            N, Len_q, self.n_heads, self.n_levels, self.n_points
        )  # [N, Lq, M, L, P]
        if reference_points.shape[-1] == 2:
            offset_normalizer = torch.stack(
                [input_spatial_shapes[..., 1], input_spatial_shapes[..., 0]], -1
            )  # [L, 2] as (W, H)
            # reference + offset / normaliser, element by element as officially, on [N, Lq,
            # M*L*P*2] rows (the broadcasts expanded first): the same values, but vectorised
            # loops instead of ones over the innermost (x, y) pairs.
            shape = (N, Len_q, self.n_heads, self.n_levels, self.n_points, 2)
            normalizer = offset_normalizer[None, None, None, :, None, :].expand(shape)[0, 0]
            sampling_locations = sampling_offsets.reshape(N, Len_q, -1) / normalizer.reshape(-1)
            sampling_locations = sampling_locations.add_(
                reference_points[:, :, None, :, None, :].expand(shape).reshape(N, Len_q, -1)
            ).view(shape)  # [N, Lq, M, L, P, 2]
        elif reference_points.shape[-1] == 4:
            sampling_locations = (
                reference_points[:, :, None, :, None, :2]
                + sampling_offsets / self.n_points * reference_points[:, :, None, :, None, 2:] * 0.5
            )  # [N, Lq, M, L, P, 2]
        else:
            raise ValueError(
                f"Last dim of reference_points must be 2 or 4, got {reference_points.shape[-1]}"
            )
        output = ms_deform_attn(
            value,
            input_spatial_shapes,
            input_level_start_index,
            sampling_locations,
            attention_weights,
            self.im2col_step,
        )  # [N, Lq, C]
        return linear(output, self.output_proj.weight, self.output_proj.bias)
