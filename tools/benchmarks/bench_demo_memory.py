"""Peak memory of ``demo/demo.py`` over folders of N generated images, as JSON: it must not grow
with N (the demo streams its inputs).

For each N (default 100 and 1000) a folder of N small JPEGs (320x240, random shapes) is made and
the demo runs over it in a fresh process, with a random-weight model (default
``configs/quick_schedules/Panoptic-R50-instant.yaml``, or ``--config-file``), writing pictures
and ``--save-json`` results. The child reports its peak RSS (``ru_maxrss``) and its RSS sampled
every 0.25 s (the median of each tenth of the run, to show a trend).

    python tools/benchmarks/bench_demo_memory.py --out bench_results/demo_memory.json
    python tools/benchmarks/bench_demo_memory.py --sizes 100 1000 10000 --threads 2
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from bench_common import cpu_model, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs/quick_schedules/Panoptic-R50-instant.yaml"
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb() -> float:
    """Resident memory of this process now (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_MB


def make_images(folder: Path, count: int, width: int, height: int) -> None:
    rng = np.random.default_rng(count)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.full((height, width, 3), rng.integers(0, 256, 3), np.uint8)
        for _ in range(6):
            center = tuple(int(v) for v in rng.integers(0, (width, height)))
            color = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.circle(image, center, int(rng.integers(10, 80)), color, -1)
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), image)


def make_weights(path: Path, config: Path) -> None:
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    import mask2former  # noqa: F401  (registers the model)
    from mask2former.config import build_config

    torch.manual_seed(0)
    model = build_model(build_config(str(config), ["MODEL.WEIGHTS", ""]))
    DetectionCheckpointer(model, save_dir=str(path.parent)).save(path.stem)


def child(argv: list[str], threads: int) -> None:
    """Run the demo with ``argv`` here; print its exit code, time and memory as JSON."""
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(REPO / "demo"))
    import demo

    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            samples.append(rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    code = demo.main(argv)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    tenths = [samples[len(samples) * i // 10 : len(samples) * (i + 1) // 10] for i in range(10)]
    report = {
        "exit_code": code,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # The median RSS in each tenth of the run: flat, or growing with the images done.
        "rss_by_tenth_mb": [round(statistics.median(t), 1) for t in tenths if t],
        "rss_samples": len(samples),
    }
    print("BENCH " + json.dumps(report), flush=True)


def run(folder: Path, weights: Path, out: Path, args: argparse.Namespace) -> dict:
    demo_argv = [
        "--config-file",
        str(args.config_file),
        "--input",
        str(folder),
        "--output",
        str(out),
    ]
    demo_argv += ["--batch-size", str(args.batch_size)]
    demo_argv += ["--save-json"] if args.save_json else []
    demo_argv += ["--opts", "MODEL.WEIGHTS", str(weights)]
    command = [sys.executable, __file__, "--child", json.dumps(demo_argv)]
    command += ["--threads", str(args.threads)]
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": pythonpath}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"demo run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--config-file", type=Path, default=CONFIG, help="model (random weights)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-save-json", dest="save_json", action="store_false")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child), args.threads)
        return

    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench_demo_memory_") as tmp:
        weights = Path(tmp, "weights", "model.pth")
        weights.parent.mkdir()
        make_weights(weights, args.config_file)
        for size in args.sizes:
            folder = Path(tmp, f"images_{size}")
            make_images(folder, size, args.width, args.height)
            report = run(folder, weights, Path(tmp, f"out_{size}"), args)
            report["images_per_s"] = round(size / report["seconds"], 2)
            runs[str(size)] = report
            print(f"{size} images: {json.dumps(report)}", file=sys.stderr, flush=True)
    first, last = runs[str(args.sizes[0])], runs[str(args.sizes[-1])]
    results = {
        "cpu": cpu_model(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "threads": args.threads,
        "config": str(args.config_file),
        "image_size": [args.height, args.width],
        "batch_size": args.batch_size,
        "save_json": args.save_json,
        "runs": runs,
        "peak_rss_growth_mb": round(last["peak_rss_mb"] - first["peak_rss_mb"], 1),
        "peak_rss_growth_kb_per_image": round(
            1024 * (last["peak_rss_mb"] - first["peak_rss_mb"]) / (args.sizes[-1] - args.sizes[0]),
            2,
        )
        if len(args.sizes) > 1
        else None,
    }
    write_results(results, args.out)


if __name__ == "__main__":
    main()
