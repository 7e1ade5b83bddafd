"""Memory and file handles over a long CPU training run of the quick-start model, as JSON.

Trains ``configs/quickstart/m2f_synthetic_R18ish_panoptic.yaml`` (no evaluation) for ``--iters``
iterations and records, every ``--every`` iterations, the resident set size (RSS, from
``/proc/<pid>/status``) of the training process and of its data-loader workers, and their open
file descriptors (``/proc/<pid>/fd``). Reports whether the training process's RSS stays within
``--tolerance`` (10 %) of its value at the first record (iteration 50), and whether the file
descriptors stay constant.

    python tools/benchmarks/bench_train_memory.py --threads 2 --out bench_results/train_memory.json
    python tools/benchmarks/bench_train_memory.py --iters 100 DATALOADER.NUM_WORKERS 2  # overrides

Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from bench_common import cpu_model, write_results  # noqa: E402
from detectron2.engine import HookBase

from mask2former.config import build_config
from mask2former.engine import Trainer

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs/quickstart/m2f_synthetic_R18ish_panoptic.yaml"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class MemoryRecorder(HookBase):
    """After every ``every``-th iteration: RSS and file descriptors of this process and workers."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.records: List[Dict[str, Any]] = []
        self.start = time.perf_counter()

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        if done % self.every:
            return
        me = os.getpid()
        workers = children(me)
        self.records.append(
            {
                "iteration": done,
                "rss_mb": round(rss_mb(me), 1),
                "workers_rss_mb": round(sum(rss_mb(pid) for pid in workers), 1),
                "workers": len(workers),
                "fds": open_fds(me),
                "workers_fds": sum(open_fds(pid) for pid in workers),
                "seconds": round(time.perf_counter() - self.start, 1),
            }
        )
        print(json.dumps(self.records[-1]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed RSS growth")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output_dir = tempfile.mkdtemp(prefix="bench_train_memory_")
    opts = ["SOLVER.MAX_ITER", str(args.iters), "DATASETS.TEST", "()", "OUTPUT_DIR", output_dir]
    cfg = build_config(str(CONFIG), opts + ["SOLVER.CHECKPOINT_PERIOD", "100000"] + args.opts)
    trainer = Trainer(cfg)
    recorder = MemoryRecorder(args.every)
    trainer.register_hooks([recorder])
    trainer.resume_or_load(resume=False)
    load_before = os.getloadavg()
    trainer.train()
    shutil.rmtree(output_dir, ignore_errors=True)
    records = recorder.records
    base = records[0]["rss_mb"]
    growth = max(r["rss_mb"] for r in records) / base - 1
    results = {
        "config": str(CONFIG.relative_to(REPO)),
        "overrides": args.opts,
        "iterations": args.iters,
        "images_per_iteration": cfg.SOLVER.IMS_PER_BATCH,
        "data_loader_workers": cfg.DATALOADER.NUM_WORKERS,
        "threads": args.threads,
        "records": records,
        "rss_base_mb": base,
        "rss_max_growth": round(growth, 4),
        "rss_within_tolerance": growth <= args.tolerance,
        "tolerance": args.tolerance,
        "fds_constant": len({(r["fds"], r["workers_fds"]) for r in records}) == 1,
        "cpu": cpu_model(),
        "load_average_before_after": [round(x, 1) for x in load_before + os.getloadavg()],
        "torch": torch.__version__,
    }
    write_results(results, args.out)


if __name__ == "__main__":
    main()
