"""Benchmark of multi-scale deformable attention on CPU: PyTorch reference vs the compiled kernel.

Shapes are those of the pixel decoder on an 800x1088 image: levels 100x136, 50x68 and 25x34
(S = Lq = 17000 queries, one per pixel), 8 heads x 32 channels, 4 points, batch 1.

Measures, for fp32 and bf16:
  * ``fwd_ms``: median forward time under ``torch.no_grad()``;
  * ``fwd_bwd_ms``: median time of a forward with autograd plus the backward to value, sampling
    locations and attention weights;
  * ``peak_extra_mb``: peak resident memory (``VmHWM`` of /proc/self/status, reset through
    /proc/self/clear_refs) above the resident memory just before one forward+backward, measured in a
    fresh subprocess after a tiny warm-up, so it counts every byte the op touches (saved tensors,
    temporaries, outputs and gradients) and no allocator cache from earlier runs;
  * ``saved_mb``: bytes autograd keeps between forward and backward in tensors that are not inputs
    (``torch.autograd.graph.saved_tensors_hooks``);
  * bf16 accuracy: max abs error and max abs error / max |ref| of the output and of the gradients
    against the fp32 reference evaluated on the same (bf16-rounded) inputs.

Prints one JSON object to stdout (and writes it to ``--out``).

    python tools/benchmarks/bench_ms_deform_attn.py --out bench_results/ms_deform_attn.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor

from mask2former.modeling.pixel_decoder.ops.functions import (
    BACKEND_ENV,
    ms_deform_attn,
    ms_deform_attn_reference,
)

LEVELS = ((100, 136), (50, 68), (25, 34))
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
Inputs = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]


def make_inputs(levels: tuple, heads: int, channels: int, points: int, seed: int = 0) -> Inputs:
    """value [1, S, M, D]; sampling locations [1, Lq, M, L, P, 2] around each pixel (some outside
    the map); attention weights [1, Lq, M, L, P], softmax-normalised. Lq = S (a query per pixel).
    """
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.int64)  # [L, 2]
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])  # [L]
    refs = []
    for h, w in levels:
        ys, xs = torch.meshgrid(
            (torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij"
        )  # [H, W] each
        refs.append(torch.stack([xs, ys], -1).flatten(0, 1))  # [H*W, 2]
    ref = torch.cat(refs)  # [Lq, 2]
    S = Lq = ref.shape[0]
    L = len(levels)
    value = torch.randn(1, S, heads, channels, generator=g)
    offsets = torch.randn(1, Lq, heads, L, points, 2, generator=g) * 0.05
    locations = ref[None, :, None, None, None, :] + offsets  # [1, Lq, M, L, P, 2]
    logits = torch.randn(1, Lq, heads, L * points, generator=g)
    weights = logits.softmax(-1).view(1, Lq, heads, L, points)  # [1, Lq, M, L, P]
    return value, shapes, starts, locations, weights


def run_op(backend: str, inputs: Inputs) -> Tensor:
    if backend == "reference":
        return ms_deform_attn_reference(*inputs)
    return ms_deform_attn(*inputs)


def fwd_bwd(backend: str, inputs: Inputs, grad: Tensor) -> list[Tensor]:
    value, shapes, starts, loc, attn = inputs
    leaves = [t.detach().requires_grad_() for t in (value, loc, attn)]
    out = run_op(backend, (leaves[0], shapes, starts, leaves[1], leaves[2]))
    return list(torch.autograd.grad(out, leaves, grad))


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cast(inputs: Inputs, dtype: torch.dtype) -> Inputs:
    value, shapes, starts, loc, attn = inputs
    return value.to(dtype), shapes, starts, loc.to(dtype), attn.to(dtype)


def saved_mb(backend: str, inputs: Inputs) -> float:
    """MB of tensors autograd saves for backward that are not the inputs themselves."""
    input_ptrs = {t.untyped_storage().data_ptr() for t in inputs}
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in input_ptrs:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    value, shapes, starts, loc, attn = inputs
    leaves = [t.detach().requires_grad_() for t in (value, loc, attn)]
    input_ptrs |= {t.untyped_storage().data_ptr() for t in leaves}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run_op(backend, (leaves[0], shapes, starts, leaves[1], leaves[2]))
    return sum(seen.values()) / 2**20


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def measure_peak_extra_mb(backend: str, dtype: str, args: argparse.Namespace) -> float:
    """Runs in a fresh process: peak RSS above the RSS before one forward+backward."""
    tiny = cast(make_inputs(((4, 5), (2, 3)), 2, 4, 2), DTYPES[dtype])
    fwd_bwd(backend, tiny, torch.ones(1, 26, 8, dtype=DTYPES[dtype]))  # load kernels, thread pool
    inputs = cast(make_inputs(LEVELS, args.heads, args.channels, args.points), DTYPES[dtype])
    grad = torch.ones(1, inputs[3].shape[1], args.heads * args.channels, dtype=DTYPES[dtype])
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    grads = fwd_bwd(backend, inputs, grad)
    peak = _status_kb("VmHWM")
    del grads
    return (peak - before) / 1024


def error_stats(out: Tensor, ref: Tensor) -> dict[str, float | bool]:
    err = (out.float() - ref.float()).abs().max().item()
    return {
        "max_abs": err,
        "max_rel": err / ref.abs().max().item(),
        "finite": bool(torch.isfinite(out).all()),
    }


def bf16_accuracy(backend: str, inputs: Inputs, grad: Tensor) -> dict[str, dict]:
    bf = cast(inputs, torch.bfloat16)
    ref_inputs = cast(bf, torch.float32)  # the same rounded values, computed in fp32
    with torch.no_grad():
        out = run_op(backend, bf)
        ref = ms_deform_attn_reference(*ref_inputs)
    grads = fwd_bwd(backend, bf, grad.bfloat16())
    ref_grads = fwd_bwd("reference", ref_inputs, grad)
    names = ("output", "grad_value", "grad_sampling_locations", "grad_attention_weights")
    return {
        name: error_stats(a, b)
        for name, a, b in zip(names, [out, *grads], [ref, *ref_grads], strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--out", type=str, default=None, help="also write the JSON here")
    parser.add_argument("--peak-memory-of", nargs=2, metavar=("BACKEND", "DTYPE"), help="internal")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ[BACKEND_ENV] = "auto"
    if args.peak_memory_of:
        print(json.dumps(measure_peak_extra_mb(*args.peak_memory_of, args)))
        return

    inputs = make_inputs(LEVELS, args.heads, args.channels, args.points)
    grad = torch.randn(1, inputs[3].shape[1], args.heads * args.channels)
    result: dict = {
        "shapes": {
            "levels": LEVELS,
            "Lq": inputs[3].shape[1],
            "heads": args.heads,
            "channels": args.channels,
            "points": args.points,
            "batch": 1,
        },
        "threads": args.threads,
        "torch": torch.__version__,
        "results": {},
    }
    for dtype_name, dtype in DTYPES.items():
        typed = cast(inputs, dtype)
        typed_grad = grad.to(dtype)
        for backend in ("reference", "compiled"):
            with torch.no_grad():
                fwd = median_ms(lambda b=backend, x=typed: run_op(b, x), args.repeats)
            both = median_ms(
                lambda b=backend, x=typed, g=typed_grad: fwd_bwd(b, x, g), args.repeats
            )
            cmd = [sys.executable, __file__, "--threads", str(args.threads)]
            cmd += ["--peak-memory-of", backend, dtype_name]
            peak = json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)
            entry = {
                "fwd_ms": fwd,
                "fwd_bwd_ms": both,
                "peak_extra_mb": peak,
                "saved_mb": saved_mb(backend, typed),
            }
            if dtype_name == "bf16":
                entry["accuracy_vs_fp32_reference"] = bf16_accuracy(backend, inputs, grad)
            result["results"][f"{backend}_{dtype_name}"] = entry
        ref, comp = (result["results"][f"{b}_{dtype_name}"] for b in ("reference", "compiled"))
        result[f"speedup_fwd_bwd_{dtype_name}"] = ref["fwd_bwd_ms"] / comp["fwd_bwd_ms"]
        comp_peak = max(comp["peak_extra_mb"], 1e-3)
        result[f"memory_ratio_{dtype_name}"] = ref["peak_extra_mb"] / comp_peak
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
