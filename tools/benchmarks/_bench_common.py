"""Shared pieces of the speed and memory benchmarks (tools/benchmarks/bench_*.py).

* models: the official COCO panoptic R50 and Swin-T recipes, seeded, with :func:`realistic_weights`
  (random weights that give tens of confident queries, so post-processing does real work);
* the input: a real COCO photo of the test samples, resized (PIL bilinear) to the benchmark size;
* the official implementation (``--official-root``, default ``$MASK2FORMER_OFFICIAL_ROOT``): run in
  a subprocess, never imported here, through ``_official_driver.py``, on the same weights and
  inputs (exchanged as files; its parameter names are ours);
* timing: wall time and process CPU time (all threads) of each iteration, medians; memory: peak
  resident memory (``VmHWM``, reset through ``/proc/self/clear_refs``) above the resident memory
  before the measured work;
* the environment (CPU model, threads, load average) recorded in every JSON result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from bench_common import cpu_model, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Measure this checkout's package, whatever the editable install points to.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
CONFIGS = {
    "r50": "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml",
    "swin_t": "configs/coco/panoptic-segmentation/swin/maskformer2_swin_tiny_bs16_50ep.yaml",
}
PHOTO = REPO / "tests/data/samples/coco_panoptic/images/000000142238.jpg"
ALL_TASKS = [
    "MODEL.MASK_FORMER.TEST.SEMANTIC_ON",
    "True",
    "MODEL.MASK_FORMER.TEST.INSTANCE_ON",
    "True",
    "MODEL.MASK_FORMER.TEST.PANOPTIC_ON",
    "True",
]
OFFICIAL_ENV = "MASK2FORMER_OFFICIAL_ROOT"
REALISTIC_WEIGHTS_DOC = (
    "seeded random init (torch.manual_seed(0), build_model), then in the transformer decoder: "
    "residual branches (attention out_proj, FFN linear2) x0.1 so the 100 queries stay distinct, "
    "class_embed.weight x10 and no-object bias -5 so tens of queries pass the 0.8 panoptic "
    "threshold, mask_embed last layer x4 for crisp masks; identical weights on both sides"
)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--threads``, ``--official-root``, ``--out``."""
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument(
        "--official-root",
        default=os.environ.get(OFFICIAL_ENV) or None,
        help=f"the official implementation to compare with (default ${OFFICIAL_ENV}); "
        "without it only our figures are reported",
    )
    parser.add_argument("--out", type=Path, help="JSON result file (e.g. bench_results/x.json)")


def environment(threads: int) -> Dict[str, Any]:
    """CPU model, cores, threads, load average, versions."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "loadavg": list(os.getloadavg()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def build_ours(model_name: str, opts: Sequence[str] = (), seed: int = 0) -> Tuple[Any, Any]:
    """(cfg, model) of our implementation: recipe ``CONFIGS[model_name]`` (or a YAML path) on CPU
    with panoptic + instance + semantic inference, seeded like the official driver."""
    from detectron2.modeling import build_model

    import mask2former  # noqa: F401  (registers the model)
    from mask2former.config import build_config

    path = CONFIGS.get(model_name, model_name)
    cfg = build_config(
        str(REPO / path), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *ALL_TASKS, *opts]
    )
    torch.manual_seed(seed)
    return cfg, build_model(cfg)


@torch.no_grad()
def realistic_weights(model: torch.nn.Module) -> None:
    """Make a random-init Mask2Former produce tens of confident queries with distinct masks (see
    ``REALISTIC_WEIGHTS_DOC``): with plain random weights every query predicts the same mask and
    no class passes the panoptic threshold, which makes post-processing unrealistically cheap."""
    predictor = model.sem_seg_head.predictor
    for name, param in predictor.named_parameters():
        if name.endswith(("out_proj.weight", "linear2.weight")):
            param.mul_(0.1)
    predictor.class_embed.weight.mul_(10.0)
    predictor.class_embed.bias[-1] = -5.0
    predictor.mask_embed.layers[-1].weight.mul_(4.0)


def load_photo(height: int, width: int) -> torch.Tensor:
    """The COCO sample photo resized (PIL bilinear) to [3, height, width] uint8 RGB."""
    from PIL import Image

    pil = Image.open(PHOTO).convert("RGB").resize((width, height), Image.BILINEAR)
    return torch.from_numpy(np.ascontiguousarray(np.asarray(pil).transpose(2, 0, 1)))


def parse_size(text: str) -> Tuple[int, int]:
    """ "800x1088" -> (800, 1088)."""
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


class Timer:
    """Wall and process-CPU time of a block: ``with timer: ...`` appends to ``wall``/``cpu``."""

    def __init__(self) -> None:
        self.wall: List[float] = []
        self.cpu: List[float] = []

    def __enter__(self) -> Timer:
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])

    def summary(self) -> Dict[str, Any]:
        return {
            "wall_s": [round(v, 4) for v in self.wall],
            "cpu_s": [round(v, 4) for v in self.cpu],
            "median_wall_s": round(statistics.median(self.wall), 4),
            "median_cpu_s": round(statistics.median(self.cpu), 4),
        }


def status_kb(key: str) -> int:
    """A ``/proc/self/status`` field in kB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak_memory() -> int:
    """Reset ``VmHWM`` to the current resident memory; return that (kB)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_kb("VmRSS")


def official_available(root: Optional[str]) -> Optional[str]:
    """``root`` if it holds the official package and its benchmark driver, else None (with a
    message saying why the official side is skipped)."""
    if not root:
        print("official side skipped: no --official-root / $" + OFFICIAL_ENV, file=sys.stderr)
        return None
    if not (Path(root) / "mask2former").is_dir() or not (Path(root) / "_bench").is_dir():
        print(f"official side skipped: {root} has no mask2former/ and _bench/", file=sys.stderr)
        return None
    return root


# glibc's malloc configured as mask2former.utils.cpu_memory.keep_freed_cpu_memory() does (its
# environment-variable form), for running the official code with the same allocator behaviour.
KEEP_FREED_MEMORY_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(2**31 - 1),
    "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1),
}


def run_official(
    root: str, args: Sequence[str], timeout: float = 3600, keep_freed_memory: bool = False
) -> Dict[str, Any]:
    """Run ``_official_driver.py`` (the official code's driver, with CPU-time and memory
    instrumentation) in a subprocess: the official package first on the path, the cwd outside
    this project; with ``keep_freed_memory``, glibc's malloc set up as ours does at inference
    (``KEEP_FREED_MEMORY_ENV``). Returns its JSON result."""
    driver = Path(__file__).with_name("_official_driver.py")
    env = dict(os.environ, PYTHONPATH=f"{root}:{root}/_shims")
    if keep_freed_memory:
        env.update(KEEP_FREED_MEMORY_ENV)
    env.pop(OFFICIAL_ENV, None)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "official.json"
        cmd = [sys.executable, str(driver), "--official-root", root, "--json-out", str(out), *args]
        proc = subprocess.run(
            cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"official run failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


def interleave(rounds: int, steps: Sequence[Callable[[], None]]) -> None:
    """Run ``steps`` in turn, ``rounds`` times (ours, official, ours, official, ...)."""
    for _ in range(rounds):
        for step in steps:
            step()


def ratio(ours: Optional[float], official: Optional[float]) -> Optional[float]:
    if ours is None or not official:
        return None
    return round(ours / official, 3)


def write_result(result: Dict[str, Any], out: Optional[Path]) -> None:
    write_results(result, out)
