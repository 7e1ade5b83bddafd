"""End-to-end CPU inference time: ours (float32, and bfloat16 autocast) against the official code.

For each model (the COCO panoptic R50 and Swin-T recipes, with panoptic + instance + semantic
inference on), one real photo resized to ``--size`` (default 800x1088) goes through the detectron2
model call ``model([{"image", "height", "width"}])`` in eval mode under ``torch.inference_mode()``
(normalisation, padding, network, mask upsampling and the three post-processings). Weights:
``_bench_common.realistic_weights`` (seeded random init made to give tens of confident queries),
saved with ``state_dict()`` and loaded by the official driver, so both sides compute the same.

Timing: each side is warmed up, then ``--rounds`` rounds run ours (float32), ours (bfloat16
autocast, ``TEST.AMP``, unless ``--no-bf16``) and the official implementation (a fresh subprocess
per round: build, one warm-up, one timed call) in turn; medians of the wall time and of the process
CPU time (all threads) are reported with the ratios ours / official measured in the same run.

Allocator: our model applies ``TEST.CPU_KEEP_FREED_MEMORY`` (on by default: glibc's malloc keeps
freed memory instead of page-faulting every large tensor in again; ``mask2former/utils/
cpu_memory.py``). ``--no-keep-freed-memory`` turns it off for ours; ``--official-keep-freed-memory``
runs the official code with the same malloc setting (environment variables), for the comparison of
the two implementations under the same allocator.

``--profile`` adds the breakdown of the float32 call of ours (and of the bfloat16 one) from
``torch.profiler``: backbone, pixel decoder (encoder, its deformable attention modules and kernel,
the rest of the encoder: FFNs and norms, the FPN and mask features), transformer decoder, and
post-processing (mask resize, semantic, panoptic, instance), in wall milliseconds, medians of
``--profile-rounds`` profiled calls (the profiler adds some overhead: compare parts, not totals,
with the timed calls).

    python tools/benchmarks/bench_inference.py --official-root /work/official_m2f \\
        --out bench_results/inference.json [--profile] [--models r50 swin_t] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
from _bench_common import (
    REALISTIC_WEIGHTS_DOC,
    Timer,
    add_common_args,
    build_ours,
    environment,
    load_photo,
    official_available,
    parse_size,
    ratio,
    realistic_weights,
    run_official,
    write_result,
)
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

# Profile rows: library labels (record_function in mask2former) and module spans added here.
LIBRARY_LABELS = {
    "pixel_decoder/encoder/deformable_attention/kernel": "mask2former::ms_deform_attn",
    "postprocess": "mask2former::postprocess",
    "postprocess/resize_masks": "mask2former::postprocess.resize",
    "postprocess/semantic": "mask2former::postprocess.semantic",
    "postprocess/panoptic": "mask2former::postprocess.panoptic",
    "postprocess/instance": "mask2former::postprocess.instance",
}


def digest(output: Dict[str, Any]) -> Dict[str, Any]:
    """What both implementations must agree on (as in the official driver's digest)."""
    _, segments = output["panoptic_seg"]
    return {
        "sem_seg_sum": float(output["sem_seg"].double().sum()),
        "panoptic_segments": len(segments),
        "num_instances": len(output["instances"]),
    }


@contextlib.contextmanager
def module_spans(spans: Dict[str, Tuple[List[nn.Module], List[nn.Module]]]) -> Iterator[None]:
    """Profiler ranges named ``bench::<name>`` from a forward pre-hook of each start module to a
    forward hook of the matching end module (a span may repeat, e.g. once per encoder layer)."""
    handles = []
    for name, (starts, ends) in spans.items():
        for start, end in zip(starts, ends):
            state: Dict[str, Any] = {}

            def enter(*_: Any, state: Dict[str, Any] = state, name: str = name) -> None:
                state["range"] = record_function("bench::" + name)
                state["range"].__enter__()

            def leave(*_: Any, state: Dict[str, Any] = state) -> None:
                state.pop("range").__exit__(None, None, None)

            handles += [start.register_forward_pre_hook(enter), end.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def profile_call(model: nn.Module, call: Callable[[], Any], rounds: int) -> Dict[str, float]:
    """Wall milliseconds per part of a model call, medians of ``rounds`` profiled calls after a
    discarded one (see the module docstring)."""
    decoder = model.sem_seg_head.pixel_decoder
    layers = decoder.transformer.encoder.layers
    spans = {
        "backbone": ([model.backbone], [model.backbone]),
        # registered before "pixel_decoder", which ends at the same hook: ranges close in order
        "pixel_decoder/fpn_and_mask_features": (
            [decoder.lateral_convs[0]],
            [decoder.mask_features],
        ),
        "pixel_decoder": ([decoder.input_proj[0]], [decoder.mask_features]),
        "pixel_decoder/encoder": ([decoder.transformer], [decoder.transformer]),
        "pixel_decoder/encoder/deformable_attention": (
            [layer.self_attn for layer in layers],
            [layer.self_attn for layer in layers],
        ),
        "transformer_decoder": ([model.sem_seg_head.predictor], [model.sem_seg_head.predictor]),
    }
    runs: List[Dict[str, float]] = []
    for _ in range(1 + rounds):  # the first profiled call (profiler start-up) is discarded
        with module_spans(spans), profile(activities=[ProfilerActivity.CPU]) as prof:
            with record_function("bench::total"):
                call()
        totals: Dict[str, float] = defaultdict(float)
        for event in prof.events():
            totals[event.name] += event.cpu_time_total / 1000  # wall ms of the range
        rows = {name: totals["bench::" + name] for name in ["total", *spans]}
        rows.update({name: totals[label] for name, label in LIBRARY_LABELS.items()})
        # The encoder's FFNs, norms and residuals (the FFN runs through layers.linear, not
        # through the nn.Linear modules, so no module hook marks it).
        rows["pixel_decoder/encoder/ffn_norms"] = (
            rows["pixel_decoder/encoder"] - rows["pixel_decoder/encoder/deformable_attention"]
        )
        rows["pixel_decoder/input_proj_pos"] = (
            rows["pixel_decoder"]
            - rows["pixel_decoder/encoder"]
            - rows["pixel_decoder/fpn_and_mask_features"]
        )
        rows["other"] = rows["total"] - sum(
            rows[name]
            for name in ("backbone", "pixel_decoder", "transformer_decoder", "postprocess")
        )
        runs.append(rows)
    return {name: round(statistics.median(run[name] for run in runs[1:]), 1) for name in runs[0]}


def bench_model(name: str, args: argparse.Namespace, official: Optional[str]) -> Dict[str, Any]:
    height, width = args.size
    keep = "False" if args.no_keep_freed_memory else "True"
    cfg, model = build_ours(name, ["TEST.CPU_KEEP_FREED_MEMORY", keep])
    realistic_weights(model)
    model.eval()
    image = load_photo(height, width)
    inputs = [{"image": image, "height": height, "width": width}]
    variants = {"fp32": None} if args.no_bf16 else {"fp32": None, "bf16": torch.bfloat16}

    def call(dtype: Optional[torch.dtype]) -> Dict[str, Any]:
        model.inference_amp_dtype = dtype
        with torch.inference_mode():
            return model(inputs)[0]

    result: Dict[str, Any] = {"config": cfg.MODEL.BACKBONE.NAME, "digest": {}}
    for variant, dtype in variants.items():  # warm-up
        result["digest"][variant] = digest(call(dtype))
    timers = {variant: Timer() for variant in variants}
    official_rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        weights, image_file = Path(tmp) / "weights.pth", Path(tmp) / "image.pth"
        torch.save(model.state_dict(), weights)
        torch.save(image, image_file)
        official_args = [
            "--model", name, "--mode", "eval", "--threads", str(args.threads),
            "--weights", str(weights), "--input-pth", str(image_file),
            "--eval-warmup", "1", "--eval-iters", "1",
        ]  # fmt: skip
        for _ in range(args.rounds):  # interleaved: ours, then the official, each round
            for variant, dtype in variants.items():
                with timers[variant]:
                    call(dtype)
            if official:
                official_rows.append(
                    run_official(
                        official,
                        official_args,
                        keep_freed_memory=args.official_keep_freed_memory,
                    )["eval"]
                )
    for variant in variants:
        result[variant] = timers[variant].summary()
    if official_rows:
        wall = [row["times_s"][0] for row in official_rows]
        cpu = [row["cpu_s"][0] for row in official_rows]
        result["official"] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "median_wall_s": round(statistics.median(wall), 4),
            "median_cpu_s": round(statistics.median(cpu), 4),
            "digest": official_rows[-1]["digest"],
        }
        for variant in variants:
            result[f"ratio_{variant}_over_official"] = {
                kind: ratio(
                    result[variant][f"median_{kind}_s"], result["official"][f"median_{kind}_s"]
                )
                for kind in ("wall", "cpu")
            }
    if args.profile:
        result["profile_ms"] = {
            variant: profile_call(model, lambda dtype=dtype: call(dtype), args.profile_rounds)
            for variant, dtype in variants.items()
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["r50", "swin_t"])
    parser.add_argument("--size", type=parse_size, default=(800, 1088), help="HxW")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per side (median)")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 variant")
    parser.add_argument("--profile", action="store_true", help="add the per-part breakdown")
    parser.add_argument("--profile-rounds", type=int, default=3, help="profiled calls (median)")
    parser.add_argument(
        "--no-keep-freed-memory",
        action="store_true",
        help="ours with TEST.CPU_KEEP_FREED_MEMORY False (glibc returns freed memory)",
    )
    parser.add_argument(
        "--official-keep-freed-memory",
        action="store_true",
        help="run the official code with the malloc setting of TEST.CPU_KEEP_FREED_MEMORY",
    )
    add_common_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    official = official_available(args.official_root)
    result = {
        "benchmark": "inference, detectron2 model call incl. panoptic+instance+semantic",
        "size": list(args.size),
        "weights": REALISTIC_WEIGHTS_DOC,
        "environment": environment(args.threads),
        "official_root": official,
        "keep_freed_memory": {
            "ours": not args.no_keep_freed_memory,
            "official": args.official_keep_freed_memory,
        },
        "models": {name: bench_model(name, args, official) for name in args.models},
    }
    result["environment"]["loadavg_end"] = list(os.getloadavg())
    write_result(result, args.out)


if __name__ == "__main__":
    main()
