"""AP and training time of the quick-start video config on the embedded synthetic video dataset,
as JSON.

Trains ``configs/quickstart/m2f_synthetic_video_R18ish.yaml`` (a small Video Mask2Former from
scratch, on CPU) on ``m2f_synthetic_video_train`` through ``tools/train_net.py`` without the final
evaluation, then evaluates ``model_final.pth`` with ``--eval-only`` on ``m2f_synthetic_video_val``
(YouTube-VIS AP). Reported: the wall time of the dataset generation (first use only), of training
and of evaluation, the seconds per iteration, the ``segm`` metrics, the CPU model and the load
average before and after (timings are only comparable on an idle machine of the same kind).

    python tools/benchmarks/bench_quickstart_video.py --out bench_results/quickstart_video.json
"""

import argparse
import importlib.util
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from bench_common import machine_facts, write_results

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs/quickstart/m2f_synthetic_video_R18ish.yaml"


def run_train_net(argv: List[str]) -> Dict[str, Any]:
    """``tools/train_net.py`` with ``argv``, in this process; returns ``main``'s results."""
    spec = importlib.util.spec_from_file_location("train_net", REPO / "tools/train_net.py")
    train_net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_net)
    return train_net.main(train_net.default_argument_parser().parse_args(argv))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None, help="SOLVER.MAX_ITER (config: 1000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-dir", type=Path, help="kept; a temporary folder otherwise")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import mask2former  # noqa: F401  (registers the datasets)
    from mask2former.data.datasets.synthetic_video import ensure_synthetic_video_dataset

    record: Dict[str, Any] = {
        **machine_facts(),
        "config": str(CONFIG.relative_to(REPO)),
        "threads": args.threads,
        "torch": torch.__version__,
    }
    start = time.perf_counter()
    ensure_synthetic_video_dataset()
    record["dataset_generation_s"] = round(time.perf_counter() - start, 1)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.output_dir or Path(tmp)
        opts = ["OUTPUT_DIR", str(out)]
        if args.iters is not None:
            opts += ["SOLVER.MAX_ITER", str(args.iters)]
        start = time.perf_counter()
        run_train_net(["--config-file", str(CONFIG), *opts, "DATASETS.TEST", "()"])
        record["train_s"] = round(time.perf_counter() - start, 1)
        metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
        losses = [m for m in metrics if "total_loss" in m]
        record["iters"] = losses[-1]["iteration"] + 1
        iter_times = sorted(m["time"] for m in losses if "time" in m)
        if iter_times:  # detectron2's per-iteration time, logged every 20 iterations
            record["median_s_per_iter"] = round(iter_times[len(iter_times) // 2], 3)
        record["final_total_loss"] = round(losses[-1]["total_loss"], 4)
        start = time.perf_counter()
        weights = str(out / "model_final.pth")
        results = run_train_net(
            ["--config-file", str(CONFIG), "--eval-only", *opts, "MODEL.WEIGHTS", weights]
        )
        record["eval_s"] = round(time.perf_counter() - start, 1)
    # NaN (no instance in that area range) is not JSON: null.
    record["segm"] = {k: None if math.isnan(v) else round(v, 3) for k, v in results["segm"].items()}
    record["loadavg_after"] = machine_facts()["loadavg"]
    write_results(record, args.out)


if __name__ == "__main__":
    main()
