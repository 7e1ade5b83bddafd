"""Peak memory and time of Video Mask2Former inference on a long video, as JSON: the official
whole-video pass against the memory-bounded windowed mode (MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE).

The model is the official YouTube-VIS 2019 R50 recipe with random weights; the video is random
uint8 frames at the test size (360x640 by default: what ``INPUT.MIN_SIZE_TEST 360`` gives a 16:9
video). Each mode runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its
own; the subprocess's address space is capped (``--max-gb``), so a pass that needs more memory ends
with an out-of-memory error (recorded) instead of exhausting the machine. Reported per mode: wall
and CPU time of ``model([video])`` (after a 2-frame warm-up), the peak RSS and the RSS before the
call (model, frames, libraries), and how the windowed predictions compare with the whole pass.

    python tools/benchmarks/bench_video_inference.py --frames 100 --window-sizes 10 30 \
        --out bench_results/video_inference.json
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from bench_common import machine_facts, write_results

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs/youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml"
GB = 1024**3


def _rss_gb() -> float:
    """Current resident memory of this process."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / GB


def run_child(args: argparse.Namespace) -> Dict[str, Any]:
    """One inference of the video in this process (``--child``)."""
    from detectron2.modeling import build_model

    import mask2former  # noqa: F401  (registers the model)
    from mask2former.config import build_config

    torch.set_num_threads(args.threads)
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""]
    if args.window_size:
        opts += ["MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE", "True"]
        opts += ["MODEL.MASK_FORMER.TEST.WINDOW_SIZE", str(args.window_size)]
    opts += args.opts
    torch.manual_seed(0)
    model = build_model(build_config(str(CONFIG), opts)).eval()
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(
        0, 256, (args.frames, 3, args.height, args.width), generator=generator, dtype=torch.uint8
    )
    video = {"image": list(frames), "height": args.height, "width": args.width}
    record: Dict[str, Any] = {"window_size": args.window_size or None, "frames": args.frames}
    with torch.inference_mode():
        model([{"image": list(frames[:2])}])  # warm-up
        record["rss_before_gb"] = round(_rss_gb(), 3)
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            result = model([video])
        except (RuntimeError, MemoryError) as error:  # the address-space cap was reached
            record["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            result = None
        record["wall_s"] = round(time.perf_counter() - start, 2)
        record["cpu_s"] = round(time.process_time() - cpu_start, 2)
    record["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    if result is not None:
        masks = torch.stack(result["pred_masks"]).numpy()  # [10, T, H, W] bool
        np.savez_compressed(
            args.child_out,
            scores=np.array(result["pred_scores"]),
            labels=np.array(result["pred_labels"]),
            masks=np.packbits(masks, axis=-1),
        )
    return record


def run_mode(args: argparse.Namespace, window_size: int, out: Path) -> Dict[str, Any]:
    """Run ``run_child`` in a fresh subprocess with the address-space cap."""
    command = [sys.executable, __file__, "--child", "--child-out", str(out)]
    command += ["--frames", str(args.frames), "--height", str(args.height)]
    command += ["--width", str(args.width), "--threads", str(args.threads)]
    command += ["--window-size", str(window_size), *args.opts]
    cap = int(args.max_gb * GB)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    completed = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        if completed.returncode < 0:  # e.g. SIGKILL from the kernel's (or a watchdog's) OOM kill
            error = f"killed by signal {-completed.returncode}"
        else:
            errors = [line for line in completed.stderr.splitlines() if "Error" in line]
            error = " | ".join(errors[-3:] or completed.stderr.strip().splitlines()[-3:])
        return {"window_size": window_size or None, "error": error}
    return json.loads(lines[-1])


def compare(whole: Path, windowed: Path) -> Optional[Dict[str, Any]]:
    """How the windowed predictions compare with the whole pass's."""
    if not (whole.is_file() and windowed.is_file()):
        return None
    a, b = np.load(whole), np.load(windowed)
    masks_a = np.unpackbits(a["masks"], axis=-1)
    masks_b = np.unpackbits(b["masks"], axis=-1)
    return {
        "same_labels": bool(np.array_equal(a["labels"], b["labels"])),
        "max_score_abs_diff": float(np.abs(a["scores"] - b["scores"]).max()),
        "differing_mask_pixels": int((masks_a != masks_b).sum()),
        "mask_pixels": int(masks_a.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--window-sizes", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-gb", type=float, default=16.0, help="address-space cap per run")
    parser.add_argument("--skip-whole", action="store_true", help="only the windowed runs")
    parser.add_argument("--out", type=Path)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--window-size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args)))
        return

    runs: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        whole_out = Path(tmp) / "whole.npz"
        if not args.skip_whole:
            runs.append({"mode": "whole", **run_mode(args, 0, whole_out)})
        for window in args.window_sizes:
            out = Path(tmp) / f"window{window}.npz"
            run = {"mode": "window", **run_mode(args, window, out)}
            run["vs_whole"] = compare(whole_out, out)
            runs.append(run)
    results = {
        **machine_facts(),
        "config": str(CONFIG.relative_to(REPO)),
        "opts": args.opts,
        "video": {"frames": args.frames, "height": args.height, "width": args.width},
        "threads": args.threads,
        "max_gb": args.max_gb,
        "torch": torch.__version__,
        "runs": runs,
    }
    write_results(results, args.out)


if __name__ == "__main__":
    main()
