"""Multi-scale deformable attention: the pure-PyTorch reference and the dispatch to the kernels.

The op is the one of Deformable DETR (Zhu et al., ICLR 2021,
github.com/fundamentalvision/Deformable-DETR, Apache-2.0); the reference is its ``grid_sample``
formulation. :func:`ms_deform_attn` dispatches by device:

* CUDA tensors -> the CUDA kernel of ``mask2former._C`` if compiled with CUDA, else the reference;
* CPU tensors -> the compiled CPU kernel (OpenMP), else the reference.

If ``mask2former._C`` cannot be imported (package not built), one warning is issued per process
and the reference is used everywhere. For debugging, the environment variable
``MASK2FORMER_DEFORM_ATTN`` (read at every call) selects the backend:

* ``auto`` (default): as above;
* ``pytorch``: always the reference;
* ``compiled``: always the compiled kernel; raises if it is not available for the inputs' device.

Dtypes: a half/bfloat16 ``value`` keeps its dtype (the kernels accumulate in float) while the
sampling locations and attention weights are cast to float32, so coordinates keep full precision;
otherwise all three are cast to their promoted dtype (float32 or float64). Mixed dtypes under
``torch.autocast`` therefore work. The output has the dtype the value was cast to.
"""

import logging
import os
import warnings
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.profiler import record_function

logger = logging.getLogger(__name__)

BACKEND_ENV = "MASK2FORMER_DEFORM_ATTN"
_BACKENDS = ("auto", "pytorch", "compiled")


def _load_extension() -> ModuleType | None:
    try:
        from mask2former import _C
    except ImportError as e:
        warnings.warn(
            f"mask2former._C is not available ({e}); multi-scale deformable attention falls "
            "back to the slower PyTorch reference. Build it with "
            "`pip install --no-build-isolation -e .`.",
            stacklevel=2,
        )
        return None
    return _C


_C: ModuleType | None = _load_extension()


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
            F.grid_sample(
                value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )
    # [N, Lq, M, L, P] -> [N*M, 1, Lq, L*P]
    attn = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    output = (torch.stack(sampling_value_list, dim=-2).flatten(-2) * attn).sum(-1)  # [N*M, D, Lq]
    return output.view(N, M * D, Lq).transpose(1, 2).contiguous()  # [N, Lq, M*D]


class _MSDeformAttnFunction(torch.autograd.Function):
    """Autograd wrapper of the compiled forward/backward kernels (first-order gradients only)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        value: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        sampling_locations: Tensor,
        attention_weights: Tensor,
        im2col_step: int,
    ) -> Tensor:
        ctx.im2col_step = im2col_step
        ctx.save_for_backward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
        return _C.ms_deform_attn_forward(
            value,
            spatial_shapes,
            level_start_index,
            sampling_locations,
            attention_weights,
            im2col_step,
        )  # [N, Lq, M*D]

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grad_value, grad_locations, grad_weights = _C.ms_deform_attn_backward(
            *ctx.saved_tensors, grad_output.contiguous(), ctx.im2col_step
        )
        return grad_value, None, None, grad_locations, grad_weights, None


def _check_shapes(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> None:
    """Shapes and dtype: tensor metadata only, so no host-device synchronisation on a GPU."""
    if value.dim() != 4 or not value.is_floating_point():
        raise ValueError(
            f"value must be a float [N, S, M, D] tensor, got {value.dtype} {tuple(value.shape)}"
        )
    N, S, M, _ = value.shape
    if sampling_locations.dim() != 6 or sampling_locations.shape[-1] != 2:
        raise ValueError(
            f"sampling_locations must be [N, Lq, M, L, P, 2], got {tuple(sampling_locations.shape)}"
        )
    _, Lq, _, L, P, _ = sampling_locations.shape
    if sampling_locations.shape[0] != N or sampling_locations.shape[2] != M:
        raise ValueError(
            f"sampling_locations {tuple(sampling_locations.shape)} do not match value "
            f"{tuple(value.shape)} in N or M"
        )
    if tuple(attention_weights.shape) != (N, Lq, M, L, P):
        raise ValueError(
            f"attention_weights must be [N, Lq, M, L, P] = {(N, Lq, M, L, P)}, "
            f"got {tuple(attention_weights.shape)}"
        )
    if tuple(spatial_shapes.shape) != (L, 2) or tuple(level_start_index.shape) != (L,):
        raise ValueError(
            f"spatial_shapes must be [L={L}, 2] and level_start_index [L], got "
            f"{tuple(spatial_shapes.shape)} and {tuple(level_start_index.shape)}"
        )


def _check_levels(spatial_shapes: Tensor, level_start_index: Tensor, length: int) -> None:
    """The level layout (the H_l * W_l add up to ``length``, ``level_start_index`` holds their
    running sums), read on the host: for the reference path, which reads the shapes anyway. The
    compiled op checks it in C++ (CPU) or on the device (CUDA, without synchronising)."""
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    if sum(sizes) != length:
        raise ValueError(f"spatial_shapes {spatial_shapes.tolist()} do not add up to S={length}")
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    if level_start_index.tolist() != starts:
        raise ValueError(
            f"level_start_index {level_start_index.tolist()} does not match spatial_shapes "
            f"(expected {starts})"
        )


def _backend() -> str:
    backend = os.environ.get(BACKEND_ENV, "auto").lower()
    if backend not in _BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={backend!r} is not one of {_BACKENDS}")
    return backend


def _compiled_available(device: torch.device) -> bool:
    if _C is None:
        return False
    return device.type == "cpu" or (device.type == "cuda" and _C.with_cuda())


def ms_deform_attn(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
    im2col_step: int = 128,
) -> Tensor:
    """Dispatches to the fastest available implementation for the inputs' device (see the module
    docstring). Shapes as in :func:`ms_deform_attn_reference`; returns [N, Lq, M*D].
    ``im2col_step`` is kept for compatibility with Deformable DETR's op; the kernels ignore it."""
    _check_shapes(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    if value.dtype in (torch.float16, torch.bfloat16):
        value_dtype, coord_dtype = value.dtype, torch.float32
    else:
        value_dtype = torch.promote_types(value.dtype, sampling_locations.dtype)
        value_dtype = coord_dtype = torch.promote_types(value_dtype, attention_weights.dtype)
    backend = _backend()
    use_compiled = backend == "compiled" or (
        backend == "auto" and _compiled_available(value.device)
    )
    if backend == "compiled" and not _compiled_available(value.device):
        raise RuntimeError(
            f"{BACKEND_ENV}=compiled but mask2former._C is not available for {value.device}"
        )
    spatial_shapes = spatial_shapes.to(device=value.device, dtype=torch.int64)
    level_start_index = level_start_index.to(device=value.device, dtype=torch.int64)
    if not use_compiled:  # the reference needs one dtype; compute in the coordinates' precision
        _check_levels(spatial_shapes, level_start_index, value.shape[1])
        return ms_deform_attn_reference(
            value.to(coord_dtype),
            spatial_shapes,
            level_start_index,
            sampling_locations.to(coord_dtype),
            attention_weights.to(coord_dtype),
        ).to(value_dtype)
    with record_function("mask2former::ms_deform_attn"):
        return _MSDeformAttnFunction.apply(
            value.to(value_dtype).contiguous(),
            spatial_shapes.contiguous(),
            level_start_index.contiguous(),
            sampling_locations.to(coord_dtype).contiguous(),
            attention_weights.to(coord_dtype).contiguous(),
            im2col_step,
        )
