"""The CUDA kernels of multi-scale deformable attention, against the CPU kernel and the PyTorch
reference. CUDA-only: every test skips without a GPU, and the first GPU run checks all of it.

Covered: every reduction path of the backward kernel (channels per head D = 1, 3 and 48: one
atomic add per lane; D = 4 and 32: warp shuffles over D lanes; D = 64 and 256: shuffles over 32
lanes, several warps per head), sampling points exactly on and outside the borders, fp64
gradcheck, float16 and bfloat16 under autocast, a non-default stream, a problem large enough for
the grid-stride loops (more than 4096 blocks x 256 threads), the level-layout check on the device
and no host-device synchronisation in the layer forward.
"""

import subprocess
import sys
import textwrap

import pytest
import torch

from mask2former.modeling.pixel_decoder.msdeformattn import MSDeformAttnTransformerEncoderLayer
from mask2former.modeling.pixel_decoder.ops import (
    MSDeformAttn,
    functions,
    ms_deform_attn,
    ms_deform_attn_reference,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

LEVELS = ((9, 13), (5, 7), (3, 4))


@pytest.fixture(autouse=True)
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled kernels, which must have been built with CUDA on a GPU machine."""
    assert functions._C is not None and functions._C.with_cuda(), "mask2former._C lacks CUDA"
    monkeypatch.setenv(functions.BACKEND_ENV, "compiled")


def make_inputs(
    N: int = 2,
    M: int = 2,
    D: int = 8,
    Lq: int = 30,
    P: int = 4,
    levels=LEVELS,
    seed: int = 0,
    borders: bool = True,
):
    """float64 CPU inputs; sampling locations in [-0.2, 1.2], with (``borders``) every border
    case: exactly on 0 and 1, on pixel centres, just outside and far outside the map. Those sit
    on the kinks of bilinear interpolation, where a finite-difference gradient is meaningless:
    gradcheck takes ``borders=False``."""
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.int64)
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    S, L = int(shapes.prod(1).sum()), len(levels)
    value = torch.randn(N, S, M, D, generator=g, dtype=torch.float64)
    loc = torch.rand(N, Lq, M, L, P, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2
    special = torch.tensor([0.0, 1.0, 0.5 / levels[0][1], -0.01, 1.01, -3.0, 4.0])
    order = torch.randperm(special.numel() * 8, generator=g)
    if borders:
        loc.view(-1)[: special.numel() * 8] = special.repeat(8)[order]
    attn = torch.rand(N, Lq, M, L, P, generator=g, dtype=torch.float64)
    return value, shapes, starts, loc, attn


def to(inputs, device: str, dtype: torch.dtype):
    return tuple(
        t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for t in inputs
    )


def forward_backward(fn, inputs, grad: torch.Tensor):
    value, shapes, starts, loc, attn = (
        t.detach().requires_grad_() if t.is_floating_point() else t for t in inputs
    )
    out = fn(value, shapes, starts, loc, attn)
    return (out, *torch.autograd.grad(out, (value, loc, attn), grad.to(out)))


def assert_all_close(got, expected, tol: float) -> None:
    for name, a, b in zip(["output", "value", "locations", "weights"], got, expected, strict=True):
        scale = max(b.abs().max().item(), 1.0)
        torch.testing.assert_close(
            a.double().cpu(), b.double().cpu(), rtol=tol, atol=tol * scale, msg=name
        )


@pytest.mark.parametrize("D", [1, 3, 4, 32, 48, 64, 256])
def test_every_backward_reduction_path(D: int) -> None:
    inputs = make_inputs(M=3, D=D, Lq=20)
    grad = torch.randn(2, 20, 3 * D, dtype=torch.float64)
    cuda = forward_backward(ms_deform_attn, to(inputs, "cuda", torch.float32), grad)
    cpu = forward_backward(ms_deform_attn, to(inputs, "cpu", torch.float32), grad)
    reference = forward_backward(ms_deform_attn_reference, inputs, grad)
    assert_all_close(cuda, cpu, 1e-4)
    assert_all_close(cuda, reference, 1e-4)


def test_gradcheck_fp64() -> None:
    value, shapes, starts, loc, attn = to(
        make_inputs(N=1, Lq=4, P=2, D=3, borders=False), "cuda", torch.float64
    )
    assert torch.autograd.gradcheck(
        lambda v, l, a: ms_deform_attn(v, shapes, starts, l, a),
        (value.requires_grad_(), loc.requires_grad_(), attn.requires_grad_()),
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_module_under_autocast(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    module = MSDeformAttn(d_model=64, n_levels=3, n_heads=4, n_points=4).cuda()
    value, shapes, starts, _, _ = to(make_inputs(), "cuda", torch.float32)
    query = torch.randn(2, 30, 64, device="cuda")
    flat = torch.randn(2, value.shape[1], 64, device="cuda", requires_grad=True)
    ref_points = torch.rand(2, 30, 3, 2, device="cuda")
    expected = module(query, ref_points, flat, shapes, starts)
    with torch.autocast("cuda", dtype=dtype):
        got = module(query, ref_points, flat, shapes, starts)
    got.float().sum().backward()
    assert torch.isfinite(got).all() and torch.isfinite(flat.grad).all()
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05)
    # the same reduced-precision value against the CPU kernel
    cpu = ms_deform_attn(*to(make_inputs(), "cpu", torch.float32))
    low = to(make_inputs(), "cuda", torch.float32)
    out = ms_deform_attn(low[0].to(dtype), *low[1:])
    assert out.dtype == dtype
    torch.testing.assert_close(out.float().cpu(), cpu, rtol=0.03, atol=0.03 * cpu.abs().max())


def test_non_default_stream() -> None:
    inputs = make_inputs()
    grad = torch.randn(2, 30, 16, dtype=torch.float64)
    expected = forward_backward(ms_deform_attn, to(inputs, "cpu", torch.float32), grad)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        on_stream = to(inputs, "cuda", torch.float32)  # produced on the side stream
        got = forward_backward(ms_deform_attn, on_stream, grad.cuda())
    stream.synchronize()
    assert_all_close(got, expected, 1e-4)


def test_grid_stride_loops() -> None:
    """N * Lq * M * D = 2 * 4200 * 8 * 32 > 4096 * 256: every thread loops."""
    inputs = make_inputs(N=2, M=8, D=32, Lq=4200, P=2)
    grad = torch.randn(2, 4200, 256, dtype=torch.float64)
    cuda = forward_backward(ms_deform_attn, to(inputs, "cuda", torch.float32), grad)
    cpu = forward_backward(ms_deform_attn, to(inputs, "cpu", torch.float32), grad)
    assert_all_close(cuda, cpu, 1e-4)


def test_level_layout_is_checked_on_the_device() -> None:
    """A wrong level_start_index fails in the kernel's device-side check (in a subprocess: a
    device-side assertion leaves the CUDA context unusable)."""
    code = textwrap.dedent(
        """
        import torch
        from mask2former.modeling.pixel_decoder.ops.functions import _C
        shapes = torch.tensor([[4, 4], [2, 2]], device="cuda")
        starts = torch.tensor([0, 15], device="cuda")  # should be [0, 16]
        value = torch.randn(1, 20, 2, 4, device="cuda")
        loc = torch.rand(1, 3, 2, 2, 1, 2, device="cuda")
        attn = torch.rand(1, 3, 2, 2, 1, device="cuda")
        _C.ms_deform_attn_forward(value, shapes, starts, loc, attn, 64)
        torch.cuda.synchronize()
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "level_start_index" in proc.stdout + proc.stderr


def test_layer_forward_does_not_synchronise() -> None:
    torch.manual_seed(0)
    layer = MSDeformAttnTransformerEncoderLayer(d_model=64, d_ffn=128, n_levels=3, n_heads=4)
    layer = layer.cuda().eval()
    _, shapes, starts, _, _ = to(make_inputs(), "cuda", torch.float32)
    x = torch.randn(2, 9 * 13 + 5 * 7 + 3 * 4, 64, device="cuda")
    ref_points = torch.rand(2, x.shape[1], 3, 2, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = layer(
            x, x, reference_points=ref_points, spatial_shapes=shapes, level_start_index=starts
        )
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(out).all()
