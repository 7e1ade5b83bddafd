"""Measuring a model: FLOPs, peak activation memory and latency (``tools/analyze_model.py``).

FLOPs follow fvcore's convention (github.com/facebookresearch/fvcore; one fused multiply-add is
one FLOP; element-wise ops, softmax and reductions are not counted, as detectron2's
``FlopCountAnalysis`` ignores them) with handlers for the ops fvcore does not know:

* multi-scale deformable attention (Deformable DETR, Zhu et al., ICLR 2021), compiled or as the
  PyTorch reference: :func:`ms_deform_attn_flops` per call, i.e. 4 multiply-adds for the bilinear
  interpolation of each sampled value channel (fvcore's count for ``grid_sample``) plus 1 for its
  attention weight. In the reference, the per-level ``grid_sample`` calls inside an
  ``MSDeformAttn`` module carry the whole count, so both backends count the same. The official
  tool saw the compiled op as an unsupported ``PythonOp`` and counted nothing for it (1.6 GFLOPs
  of the COCO R50 and Swin-T recipes at 800x1088);
* ``baddbmm`` (``nn.MultiheadAttention`` with an attention mask: the masked attention of the
  transformer decoder): the batched matmul, the added mask being element-wise;
* ``scaled_dot_product_attention`` (the Swin window attention): ``q @ k^T`` and ``attn @ v``.

fvcore's own ``einsum`` handler counts the heads' ``bqc,bchw->bqhw`` (mask prediction) and
``qc,qhw->chw`` (semantic inference) as B*Q*C*H*W and Q*C*H*W multiply-adds.
"""

import statistics
import time
from math import prod
from typing import Any, Callable, Dict, List, Optional, Set

import torch
from detectron2.export import TracingAdapter
from detectron2.utils.analysis import FlopCountAnalysis
from fvcore.nn import ActivationCountAnalysis
from fvcore.nn.jit_handles import Handle, bmm_flop_jit, get_shape
from torch import nn

from ..modeling.pixel_decoder.ops import MSDeformAttn
from ..modeling.pixel_decoder.ops.functions import _MSDeformAttnFunction

__all__ = [
    "MS_DEFORM_ATTN_FLOPS_PER_SAMPLE",
    "MaskFormerActivationCountAnalysis",
    "MaskFormerFlopCountAnalysis",
    "flop_handles",
    "measure_latency",
    "ms_deform_attn_flops",
    "peak_memory_bytes",
]

# Multiply-adds per sampled value channel: 4 for the bilinear interpolation, 1 for the weight.
MS_DEFORM_ATTN_FLOPS_PER_SAMPLE = 5
_BILINEAR_FLOPS = 4
# Python names the compiled op is traced under: ours, and the official implementation's.
_DEFORM_ATTN_OPS = (
    "prim::PythonOp." + _MSDeformAttnFunction.__name__,
    "prim::PythonOp.MSDeformAttnFunction",
)


def ms_deform_attn_flops(
    batch: int, num_queries: int, num_heads: int, num_levels: int, num_points: int, head_dim: int
) -> int:
    """FLOPs of one multi-scale deformable attention op (without its input/output projections):
    ``5 * N * Lq * M * L * P * D`` (see the module docstring)."""
    samples = batch * num_queries * num_heads * num_levels * num_points
    return MS_DEFORM_ATTN_FLOPS_PER_SAMPLE * samples * head_dim


def _deform_attn_op_flops(inputs: List[Any], outputs: List[Any]) -> int:
    """Handle of the compiled op: inputs (value [N, S, M, D], spatial_shapes, level_start_index,
    sampling_locations [N, Lq, M, L, P, 2], attention_weights [N, Lq, M, L, P], im2col_step)."""
    n, _, m, d = get_shape(inputs[0])
    _, lq, _, levels, points, _ = get_shape(inputs[3])
    return ms_deform_attn_flops(n, lq, m, levels, points, d)


def _grid_sampler_handle(deform_attn_scopes: Set[str]) -> Handle:
    """``grid_sample`` output [N, C, H_out, W_out]: 4 FLOPs per output value (bilinear), or the
    deformable-attention count (5) when called by an ``MSDeformAttn`` module (the reference
    samples one level per call; its weighting is element-wise and so not counted elsewhere)."""

    def handle(inputs: List[Any], outputs: List[Any]) -> int:
        scope = outputs[0].node().scopeName().split("/")[-1]
        per_value = (
            MS_DEFORM_ATTN_FLOPS_PER_SAMPLE if scope in deform_attn_scopes else _BILINEAR_FLOPS
        )
        return per_value * prod(get_shape(outputs[0]))

    return handle


def _baddbmm_flops(inputs: List[Any], outputs: List[Any]) -> int:
    """``baddbmm(input, batch1 [B, N, K], batch2 [B, K, M])``: B*N*K*M (the add is element-wise)."""
    return bmm_flop_jit(inputs[1:3], outputs)


def _sdpa_flops(inputs: List[Any], outputs: List[Any]) -> int:
    """``scaled_dot_product_attention(q [..., L, E], k [..., S, E], v [..., S, Ev])``:
    ``prod(...) * L * S * (E + Ev)`` (scores, then their weighted sum of values)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    return prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def flop_handles(model: nn.Module) -> Dict[str, Handle]:
    """fvcore op handles for Mask2Former's ops; ``model`` is the module being traced (its
    ``MSDeformAttn`` submodule names are the trace scopes of the reference's ``grid_sample``)."""
    scopes = {name for name, m in model.named_modules() if isinstance(m, MSDeformAttn)}
    handles: Dict[str, Handle] = {op: _deform_attn_op_flops for op in _DEFORM_ATTN_OPS}
    handles.update(
        {
            "aten::grid_sampler": _grid_sampler_handle(scopes),
            "aten::baddbmm": _baddbmm_flops,
            "aten::scaled_dot_product_attention": _sdpa_flops,
        }
    )
    return handles


class MaskFormerFlopCountAnalysis(FlopCountAnalysis):
    """detectron2's ``FlopCountAnalysis`` (a model taking ``list[dict]`` inputs) with the handles
    of :func:`flop_handles`. Module names in its results are prefixed with ``model.``."""

    def __init__(self, model: nn.Module, inputs: List[Dict[str, Any]]) -> None:
        super().__init__(model, inputs)
        self.set_op_handle(**flop_handles(self._model))


class MaskFormerActivationCountAnalysis(ActivationCountAnalysis):
    """fvcore's activation count (outputs of convolutions and linear layers) for a model taking
    ``list[dict]`` inputs, traced as ``MaskFormerFlopCountAnalysis`` traces it."""

    def __init__(self, model: nn.Module, inputs: List[Dict[str, Any]]) -> None:
        wrapper = TracingAdapter(model, inputs, allow_non_tensor=True)
        super().__init__(wrapper, wrapper.flattened_inputs)


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak tensor memory allocated while ``fn()`` runs, above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the allocation and free events that
    ``torch.profiler`` records from PyTorch's CPU allocator, summed in time order (the allocator
    keeps no peak statistic on the CPU). Either way only tensors count: not the weights allocated
    before ``fn``, nor the memory the C library or Python hold.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    if device.type != "cpu":
        raise ValueError(f"peak memory is measured on cpu or cuda, not {device}")
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn()
    events = prof.profiler.kineto_results.events()
    deltas = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in deltas:
        live += nbytes
        peak = max(peak, live)
    return peak


def measure_latency(
    fn: Callable[[], Any], runs: int, warmup: int = 1, device: Optional[torch.device] = None
) -> Dict[str, float]:
    """Wall time of ``fn()`` in ``runs`` runs after ``warmup`` ones: median, min, max, mean (s)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")

    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "mean_s": statistics.fmean(times),
    }
