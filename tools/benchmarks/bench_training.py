"""Training step on CPU: time per iteration and peak memory, ours against the official code; and
peak memory of the point-sampled mask loss against the full-resolution mask loss.

For each model (the COCO panoptic R50 and Swin-T recipes), both implementations train on the same
weights (our seeded init, saved with ``state_dict()``) and the same batch (``--batch`` images of
``--size`` x ``--size`` with ``--instances`` rectangles and ellipses each, shaped like the
official ``COCOPanopticNewBaselineDatasetMapper`` output), in float32: forward + losses,
backward, then the optimizer step (AdamW with the recipe's parameter groups and full-model
gradient clipping: ours from ``mask2former.solver.build_optimizer``, the official side from its
benchmark driver).

Allocator: our trainer applies ``SOLVER.CPU_KEEP_FREED_MEMORY`` (on by default: glibc's malloc keeps
freed memory instead of unmapping it and page-faulting it in again at every step,
``mask2former/utils/cpu_memory.py``), so our measured process does too; ``--no-keep-freed-memory``
turns it off for ours, ``--official-keep-freed-memory`` gives the official process the same
setting (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``) to compare the code alone.

Every measurement runs in a fresh process (build, one warm-up iteration, one timed iteration), so
the peak resident memory above the memory after building (``VmHWM`` reset through
``/proc/self/clear_refs``) is comparable between runs. ``--rounds`` rounds run ours and the
official implementation in turn (load on the machine affects both); medians are reported with
the ratios ours / official.

Mask-loss memory (``--mask-loss-models``, by default all): the same model and batch trained
with the full-resolution mask loss (the predicted masks bilinearly upsampled to the padded image
size; BCE and dice over every pixel, final and auxiliary predictions; matching unchanged)
instead of the point-sampled loss (``MODEL.MASK_FORMER.TRAIN_NUM_POINTS`` = 12544 points per
mask), as in the paper's memory comparison (Mask2Former, Cheng et al., CVPR 2022, Sec. 3.3).

    python tools/benchmarks/bench_training.py --official-root /work/official_m2f \\
        --out bench_results/training.json [--models r50 swin_t] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from _bench_common import (
    add_common_args,
    build_ours,
    environment,
    official_available,
    ratio,
    reset_peak_memory,
    run_official,
    status_kb,
    write_result,
)

PHASES = ("forward_loss_s", "backward_s", "step_s", "total_s")


def synthetic_batch(size: int, batch: int, instances: int, num_classes: int) -> List[Dict]:
    """``batch`` dicts ``{"image": [3, S, S] uint8, "height", "width", "instances"}`` with
    ``gt_classes`` [N] int64 and ``gt_masks`` [N, S, S] bool (rectangles and ellipses)."""
    from detectron2.structures import Instances

    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")  # [S, S]
    out = []
    for _ in range(batch):
        masks, classes = [], []
        for k in range(instances):
            cy, cx = torch.randint(size // 8, size - size // 8, (2,), generator=g).tolist()
            ry, rx = torch.randint(size // 16, size // 4, (2,), generator=g).tolist()
            if k % 2 == 0:
                masks.append(((yy - cy).abs() <= ry) & ((xx - cx).abs() <= rx))
            else:
                masks.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0)
            classes.append(int(torch.randint(0, num_classes, (1,), generator=g)))
        inst = Instances((size, size))
        inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
        inst.gt_masks = torch.stack(masks)  # [N, S, S] bool
        image = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
        out.append({"image": image, "height": size, "width": size, "instances": inst})
    return out


def full_resolution_criterion(cfg: Any) -> torch.nn.Module:
    """The model's SetCriterion with the mask losses on every pixel of the padded image instead
    of on sampled points (the matcher is unchanged)."""
    from torch.nn import functional as F

    from mask2former.modeling.criterion.set_criterion import SetCriterion
    from mask2former.modeling.losses import dice_loss, sigmoid_ce_loss

    class FullResolutionMaskCriterion(SetCriterion):
        def loss_masks(self, outputs, targets, indices, num_masks):  # noqa: ANN001, ANN201
            batch_idx, src_idx = self._src_permutation_idx(indices)
            src = outputs["pred_masks"][batch_idx, src_idx]  # [N, h, w]
            target = self._matched_target_masks(targets, indices).to(src)  # [N, H, W]
            src = F.interpolate(
                src[:, None], size=target.shape[-2:], mode="bilinear", align_corners=False
            ).flatten(1)  # [N, H*W]
            target = target.flatten(1)  # [N, H*W]
            return {
                "loss_mask": sigmoid_ce_loss(src, target, num_masks),
                "loss_dice": dice_loss(src, target, num_masks),
            }

    return FullResolutionMaskCriterion(cfg)


def worker(args: argparse.Namespace) -> None:
    """One measured run of ours (in its own process): build, warm-up, ``--iters`` timed."""
    from mask2former.solver import build_optimizer
    from mask2former.utils.cpu_memory import keep_freed_cpu_memory

    torch.set_num_threads(args.threads)
    cfg, model = build_ours(args.models[0])
    if cfg.SOLVER.CPU_KEEP_FREED_MEMORY and not args.no_keep_freed_memory:
        keep_freed_cpu_memory()  # as engine.Trainer does on a CPU
    model.load_state_dict(torch.load(args.weights, weights_only=True))
    if args.worker_mask_loss == "full":
        model.criterion = full_resolution_criterion(cfg)
    batch = torch.load(args.batch_pth, weights_only=False)
    optimizer = build_optimizer(cfg, model)
    model.train()
    rss_before = reset_peak_memory()
    rows = []
    for _ in range(1 + args.iters):
        t0 = time.perf_counter(), time.process_time()
        losses = model(batch)
        loss = sum(losses.values())
        t1 = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter(), time.process_time()
        optimizer.step()
        t3 = time.perf_counter(), time.process_time()
        row = {"loss": float(loss), "num_loss_terms": len(losses)}
        for name, (a, b) in zip(PHASES, [(t0, t1), (t1, t2), (t2, t3), (t0, t3)]):
            row[name] = b[0] - a[0]
            row[name.replace("_s", "_cpu_s")] = b[1] - a[1]
        rows.append(row)
    result = {
        "warmup": rows[0],
        "iters": rows[1:],
        "peak_extra_mb": (status_kb("VmHWM") - rss_before) / 1024,
    }
    Path(args.worker_out).write_text(json.dumps(result))


def run_ours(args: argparse.Namespace, name: str, files: Dict[str, Path], mask_loss: str) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ours.json"
        cmd = [
            sys.executable, __file__, "--worker", "--models", name,
            "--threads", str(args.threads), "--iters", "1",
            "--weights", str(files["weights"]), "--batch-pth", str(files["batch"]),
            "--worker-mask-loss", mask_loss, "--worker-out", str(out),
            *(["--no-keep-freed-memory"] if args.no_keep_freed_memory else []),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"our run failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Medians over runs (each run: one timed iteration) of every phase and of the peak memory."""
    rows = [run["iters"][0] for run in runs]
    result: Dict[str, Any] = {
        f"median_{phase}": round(statistics.median(row[phase] for row in rows), 3)
        for phase in PHASES
    }
    result["median_total_cpu_s"] = round(statistics.median(r["total_cpu_s"] for r in rows), 3)
    result["total_s"] = [round(row["total_s"], 3) for row in rows]
    result["peak_extra_mb"] = [round(run["peak_extra_mb"], 1) for run in runs]
    result["median_peak_extra_mb"] = round(statistics.median(result["peak_extra_mb"]), 1)
    result["loss"] = [round(row["loss"], 5) for row in rows]
    return result


def bench_model(name: str, args: argparse.Namespace, official: Optional[str]) -> Dict[str, Any]:
    cfg, model = build_ours(name)
    runs: Dict[str, List[Dict[str, Any]]] = {"ours": [], "official": [], "ours_full_mask_loss": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"weights": Path(tmp) / "weights.pth", "batch": Path(tmp) / "batch.pth"}
        torch.save(model.state_dict(), files["weights"])
        del model
        batch = synthetic_batch(
            args.size, args.batch, args.instances, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        )
        torch.save(batch, files["batch"])
        official_args = [
            "--batch-pth", str(files["batch"]), "--",
            "--model", name, "--mode", "train", "--threads", str(args.threads),
            "--weights", str(files["weights"]), "--train-size", str(args.size),
            "--batch", str(args.batch), "--train-warmup", "1", "--train-iters", "1",
        ]  # fmt: skip
        for _ in range(args.rounds):  # interleaved, so load on the machine affects both
            runs["ours"].append(run_ours(args, name, files, "point"))
            if official:
                official_run = run_official(
                    official, official_args, keep_freed_memory=args.official_keep_freed_memory
                )
                runs["official"].append({**official_run["train"], **official_run})
            if name in args.mask_loss_models:
                runs["ours_full_mask_loss"].append(run_ours(args, name, files, "full"))
    result: Dict[str, Any] = {
        "config": cfg.MODEL.BACKBONE.NAME,
        "train_num_points": cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS,
        "ours": summarize(runs["ours"]),
        "first_loss_ours": round(runs["ours"][0]["warmup"]["loss"], 5),
    }
    if runs["official"]:
        result["official"] = summarize(runs["official"])
        result["ratio_time_ours_over_official"] = ratio(
            result["ours"]["median_total_s"], result["official"]["median_total_s"]
        )
        result["ratio_cpu_time_ours_over_official"] = ratio(
            result["ours"]["median_total_cpu_s"], result["official"]["median_total_cpu_s"]
        )
        result["ratio_peak_memory_ours_over_official"] = ratio(
            result["ours"]["median_peak_extra_mb"], result["official"]["median_peak_extra_mb"]
        )
    if runs["ours_full_mask_loss"]:
        full = summarize(runs["ours_full_mask_loss"])
        result["ours_full_mask_loss"] = full
        result["ratio_peak_memory_full_mask_loss_over_point_loss"] = ratio(
            full["median_peak_extra_mb"], result["ours"]["median_peak_extra_mb"]
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["r50", "swin_t"])
    parser.add_argument("--size", type=int, default=512, help="square crop size")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--instances", type=int, default=6, help="ground-truth masks per image")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per side (median)")
    parser.add_argument(
        "--mask-loss-models",
        nargs="*",
        help="models also trained with the full-resolution mask loss (default: all)",
    )
    parser.add_argument(
        "--no-keep-freed-memory",
        action="store_true",
        help="ours with SOLVER.CPU_KEEP_FREED_MEMORY False (glibc returns freed memory)",
    )
    parser.add_argument(
        "--official-keep-freed-memory",
        action="store_true",
        help="run the official code with the malloc setting of SOLVER.CPU_KEEP_FREED_MEMORY",
    )
    add_common_args(parser)
    # one measured run of ours, in a subprocess of the benchmark
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--iters", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--batch-pth", help=argparse.SUPPRESS)
    parser.add_argument("--worker-mask-loss", default="point", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.mask_loss_models is None:
        args.mask_loss_models = args.models
    official = official_available(args.official_root)
    result: Dict[str, Any] = {
        "benchmark": f"training step, {args.batch}x{args.size}x{args.size}, float32, "
        f"{args.instances} masks per image, AdamW with full-model gradient clipping",
        "environment": environment(args.threads),
        "official_root": official,
        "keep_freed_memory": {
            "ours": not args.no_keep_freed_memory,
            "official": args.official_keep_freed_memory,
        },
        "models": {},
    }
    for name in args.models:  # the result file is rewritten after each model
        result["models"][name] = bench_model(name, args, official)
        result["environment"]["loadavg_end"] = list(os.getloadavg())
        write_result(result, args.out)


if __name__ == "__main__":
    main()
