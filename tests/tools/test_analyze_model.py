"""``tools/analyze_model.py`` and the FLOP handles / measurements behind it."""

import json
import runpy
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model
from fvcore.nn import FlopCountAnalysis
from torch import Tensor, nn

import mask2former  # noqa: F401  (registers the model)
from mask2former.engine import build_config
from mask2former.modeling.pixel_decoder.ops import MSDeformAttn
from mask2former.modeling.pixel_decoder.ops import functions as deform_functions
from mask2former.utils.analysis import (
    flop_handles,
    measure_latency,
    ms_deform_attn_flops,
    peak_memory_bytes,
)

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs/quick_schedules/Panoptic-R50-instant.yaml"


def count_flops(module: nn.Module, *inputs: Any) -> Dict[str, float]:
    """FLOPs by operator of ``module(*inputs)`` with Mask2Former's handles."""
    analysis = FlopCountAnalysis(module, inputs).set_op_handle(**flop_handles(module))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return dict(analysis.by_operator())


# ---------------------------------------------------------------------------------------------
# Deformable attention: both backends give the documented formula.

N, LQ, C, M, LEVELS, P = 2, 10, 32, 4, 2, 3
SHAPES = [(4, 5), (2, 3)]


def deform_attn_inputs() -> tuple:
    torch.manual_seed(0)
    spatial_shapes = torch.tensor(SHAPES)
    level_start_index = torch.tensor([0, SHAPES[0][0] * SHAPES[0][1]])
    length = sum(h * w for h, w in SHAPES)
    return (
        torch.randn(N, LQ, C),
        torch.rand(N, LQ, LEVELS, 2),
        torch.randn(N, length, C),
        spatial_shapes,
        level_start_index,
    )


@pytest.mark.parametrize("backend", ["compiled", "pytorch"])
def test_deformable_attention_flops(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "compiled" and deform_functions._C is None:
        pytest.skip("mask2former._C is not built")
    monkeypatch.setenv(deform_functions.BACKEND_ENV, backend)
    module = MSDeformAttn(d_model=C, n_levels=LEVELS, n_heads=M, n_points=P).eval()
    flops = count_flops(module, *deform_attn_inputs())
    op_flops = flops.pop(
        "PythonOp._MSDeformAttnFunction" if backend == "compiled" else "grid_sampler"
    )
    # 4 multiply-adds of bilinear interpolation + 1 of attention weight per sampled value channel
    assert op_flops == 5 * N * LQ * M * LEVELS * P * (C // M)
    assert op_flops == ms_deform_attn_flops(N, LQ, M, LEVELS, P, C // M)
    length = sum(h * w for h, w in SHAPES)
    projections = N * length * C * C + N * LQ * C * (M * LEVELS * P * 3) + N * LQ * C * C
    assert flops == {"linear": projections}


def test_grid_sample_outside_deformable_attention_counts_bilinear_only() -> None:
    class Sampler(nn.Module):
        def forward(self, x: Tensor, grid: Tensor) -> Tensor:
            return F.grid_sample(x, grid, align_corners=False)

    out = count_flops(Sampler(), torch.randn(2, 3, 8, 8), torch.rand(2, 5, 7, 2) * 2 - 1)
    assert out == {"grid_sampler": 4 * 2 * 3 * 5 * 7}


# ---------------------------------------------------------------------------------------------
# The heads' einsum / bmm and the Swin attention.


class Einsum(nn.Module):
    def __init__(self, equation: str) -> None:
        super().__init__()
        self.equation = equation

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.einsum(self.equation, a, b)


def test_mask_prediction_and_semantic_einsums() -> None:
    b, q, c, h, w, k = 2, 5, 8, 6, 7, 4
    masks = count_flops(Einsum("bqc,bchw->bqhw"), torch.randn(b, q, c), torch.randn(b, c, h, w))
    assert masks == {"einsum": b * q * c * h * w}
    semantic = count_flops(Einsum("qc,qhw->chw"), torch.randn(q, k), torch.randn(q, h, w))
    assert semantic == {"einsum": q * k * h * w}


class MaskedAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads)

    def forward(self, q: Tensor, kv: Tensor, mask: Tensor) -> Tensor:
        return self.attention(q, kv, kv, attn_mask=mask)[0]


def test_masked_multihead_attention_counts_its_matmuls() -> None:
    length, source, batch, dim, heads = 5, 7, 2, 16, 4
    mask = torch.zeros(batch * heads, length, source, dtype=torch.bool)
    mask[:, :, 0] = True
    inputs = (torch.randn(length, batch, dim), torch.randn(source, batch, dim), mask)
    flops = count_flops(MaskedAttention(dim, heads).eval(), *inputs)
    # scores q k^T by baddbmm (the mask is added), then scores @ v by bmm
    assert flops.pop("baddbmm") == batch * heads * length * (dim // heads) * source
    assert flops.pop("bmm") == batch * heads * length * source * (dim // heads)
    assert flops == {"linear": (length + 2 * source) * batch * dim * dim + length * batch * dim**2}


def test_scaled_dot_product_attention() -> None:
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    flops = count_flops(lambda_module(F.scaled_dot_product_attention), q, k, v)
    assert flops == {"scaled_dot_product_attention": 2 * 3 * 5 * 7 * (8 + 4)}


def lambda_module(fn: Callable[..., Tensor]) -> nn.Module:
    class Wrapped(nn.Module):
        def forward(self, *args: Tensor) -> Tensor:
            return fn(*args)

    return Wrapped()


# ---------------------------------------------------------------------------------------------
# Memory and latency.


def test_peak_memory_follows_allocations_and_frees() -> None:
    mib = 2**20

    def fn() -> Tensor:
        a = torch.empty(mib, dtype=torch.uint8)
        b = torch.empty(8 * mib, dtype=torch.uint8)  # live: 9 MiB
        del a  # live: 8 MiB
        c = torch.empty(2 * mib, dtype=torch.uint8)  # live: 10 MiB
        d = torch.empty(mib, dtype=torch.uint8)  # live: 11 MiB, the peak
        return b[:1] + c[:1] + d[:1]

    peak = peak_memory_bytes(fn, torch.device("cpu"))
    assert 11 * mib <= peak < 11 * mib + 4096


def test_latency_is_the_median_of_the_runs() -> None:
    calls = []
    result = measure_latency(lambda: calls.append(1), runs=5, warmup=2)
    assert len(calls) == 7
    assert 0 <= result["min_s"] <= result["median_s"] <= result["max_s"]


# ---------------------------------------------------------------------------------------------
# The tool, end to end on a tiny config.


def test_analyze_model_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "analysis.json"
    tool = runpy.run_path(str(REPO / "tools/analyze_model.py"))
    tool["main"](
        [
            "--tasks",
            *("parameter", "structure", "flop", "activation", "memory", "latency"),
            "--config-file",
            str(TINY_CONFIG),
            *("--num-inputs", "1", "--input-size", "64", "96", "--latency-runs", "2"),
            *("--output", str(out)),
            *("MODEL.DEVICE", "cpu"),
        ]
    )
    results = json.loads(out.read_text())
    tasks = {"parameter", "structure", "flop", "activation", "memory", "latency"}
    assert tasks <= set(results)
    assert {"config_file", "device", "threads", "cpu", "torch", "inputs"} <= set(results)
    (item,) = results["inputs"]
    assert item["network_input"] == [64, 96]
    assert item["output_size"] == [427, 640]  # the first COCO sample's own size

    cfg = build_config(str(TINY_CONFIG), ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    assert results["parameter"]["total"] == sum(p.numel() for p in model.parameters())
    assert results["parameter"]["by_module"]["backbone"] == sum(
        p.numel() for p in model.backbone.parameters()
    )

    flop = results["flop"]
    assert {"gflops", "by_operator_gflops", "by_module_gflops", "post_processing_gflops"} <= set(
        flop
    )
    # the encoder's deformable attention: res3..res5 of the 64x96 input as queries
    head = cfg.MODEL.SEM_SEG_HEAD
    queries = sum((64 // s) * (96 // s) for s in (8, 16, 32))
    heads = head.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS
    per_layer = ms_deform_attn_flops(
        1, queries, heads, 3, head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS, head.CONVS_DIM // heads
    )
    op_gflops = flop["by_operator_gflops"]["PythonOp._MSDeformAttnFunction"]
    assert op_gflops * 1e9 == pytest.approx(head.TRANSFORMER_ENC_LAYERS * per_layer)
    parts = flop["by_module_gflops"]
    assert flop["gflops"]["mean"] == pytest.approx(
        parts["backbone"] + parts["sem_seg_head"] + flop["post_processing_gflops"]
    )
    assert results["memory"]["peak_activation_mib"]["mean"] > 0
    assert results["latency"]["median_s"] > 0 and results["latency"]["runs"] == 2
    assert results["activation"]["million_activations"]["mean"] > 0
    assert "MaskFormer(" in results["structure"]["text"]
