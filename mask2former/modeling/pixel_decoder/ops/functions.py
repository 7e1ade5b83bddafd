# Multi-scale deformable attention: the pure-PyTorch reference and the dispatch to compiled kernels.
# The reference is the grid_sample formulation of Deformable DETR (Zhu et al., ICLR 2021).
# NOTE: placeholder dispatch; the compiled CPU/CUDA paths are wired in by the ops work.
import torch
import torch.nn.functional as F
from torch import Tensor


def ms_deform_attn_reference(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Pure-PyTorch multi-scale deformable attention (bilinear, zero padding, align_corners=False).

    Args:
        value: [N, S, M, D] with S = sum_l H_l*W_l.
        spatial_shapes: [L, 2] int64 (H_l, W_l).
        level_start_index: [L] int64 (unused here; kept for the common signature).
        sampling_locations: [N, Lq, M, L, P, 2] in [0, 1], (x, y).
        attention_weights: [N, Lq, M, L, P].
    Returns:
        [N, Lq, M*D]
    """
    N, S, M, D = value.shape
    _, Lq, M, L, P, _ = sampling_locations.shape
    value_list = value.split([int(h) * int(w) for h, w in spatial_shapes.tolist()], dim=1)
    sampling_grids = 2 * sampling_locations - 1  # [N, Lq, M, L, P, 2] in [-1, 1]
    sampling_value_list = []
    for lid, (h, w) in enumerate(spatial_shapes.tolist()):
        # [N, H*W, M, D] -> [N*M, D, H, W]
        value_l = value_list[lid].flatten(2).transpose(1, 2).reshape(N * M, D, h, w).contiguous()
        # [N, Lq, M, P, 2] -> [N*M, Lq, P, 2]
        grid_l = sampling_grids[:, :, :, lid].transpose(1, 2).flatten(0, 1).contiguous()
        # [N*M, D, Lq, P]
        sampling_value_list.append(
            F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    # [N, Lq, M, L, P] -> [N*M, 1, Lq, L*P]
    attn = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    output = (torch.stack(sampling_value_list, dim=-2).flatten(-2) * attn).sum(-1)  # [N*M, D, Lq]
    return output.view(N, M * D, Lq).transpose(1, 2).contiguous()  # [N, Lq, M*D]


def ms_deform_attn(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
    im2col_step: int = 128,
) -> Tensor:
    """Dispatches to the fastest available implementation for the inputs' device. Shapes as in
    :func:`ms_deform_attn_reference`."""
    return ms_deform_attn_reference(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights
    )
