"""CPU inference time of official Mask2Former recipes (random weights), as JSON.

For each config and input size: the median wall time of ``model([{"image": ...}])`` in eval mode
under ``torch.inference_mode()`` (post-processing included, results at the input size), after one
warm-up run, with ``--threads`` intra-op threads.

    python tools/benchmarks/bench_model_forward.py --threads 2 --out bench_results/forward.json
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from bench_common import machine_facts, write_results
from detectron2.modeling import build_model

import mask2former  # noqa: F401  (registers the model)
from mask2former.config import build_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    "R50": "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml",
    "Swin-T": "configs/coco/panoptic-segmentation/swin/maskformer2_swin_tiny_bs16_50ep.yaml",
}
SIZES = ((512, 512), (800, 1088))


def time_forward(config: str, size: tuple[int, int], repeats: int) -> dict:
    cfg = build_config(str(REPO / config), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8)
    inputs = [{"image": image, "height": size[0], "width": size[1]}]
    times = []
    with torch.inference_mode():
        model(inputs)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(inputs)
            times.append(time.perf_counter() - start)
    return {
        "config": config,
        "height": size[0],
        "width": size[1],
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        **machine_facts(),
        "threads": args.threads,
        "torch": torch.__version__,
        "runs": {
            f"{name}@{h}x{w}": time_forward(config, (h, w), args.repeats)
            for name, config in CONFIGS.items()
            for h, w in SIZES
        },
    }
    write_results(results, args.out)


if __name__ == "__main__":
    main()
