"""Batched CPU inference throughput: images per second at batch 1, 2 and 4.

For each model (the COCO panoptic R50 and Swin-T recipes, panoptic + instance + semantic
inference, ``_bench_common.realistic_weights``), ``--size`` images (real photos of the test
samples and their mirror images, resized) go through one detectron2 model call per batch in eval
mode under ``torch.inference_mode()``. Each round times every batch size in turn (so load on the
machine affects all of them); images/s = batch / median wall time.

Every batched result is compared with the single-image run of the same image: whether the
panoptic segmentation and segments, the instance classes and masks and the semantic argmax are
identical, and the max abs difference of the semantic and instance scores. The batched
convolutions round differently from single-image ones (oneDNN picks its blocking by batch size),
so values at a tie (a mask logit at 0, two equal class scores) may flip.

    python tools/benchmarks/bench_batched.py --out bench_results/batched.json \\
        [--models r50 swin_t] [--batches 1 2 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Dict, List

import numpy as np
import torch
from _bench_common import (
    REPO,
    add_common_args,
    build_ours,
    environment,
    parse_size,
    realistic_weights,
    write_result,
)

IMAGES = sorted((REPO / "tests/data/samples/coco_panoptic/images").glob("*.jpg"))


def load_images(height: int, width: int, count: int) -> List[torch.Tensor]:
    """``count`` distinct [3, H, W] uint8 images: the sample photos, then their mirror images."""
    from PIL import Image

    photos = []
    for path in IMAGES:
        pil = Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR)
        photos.append(torch.from_numpy(np.ascontiguousarray(np.asarray(pil).transpose(2, 0, 1))))
    photos += [p.flip(-1) for p in photos]
    if len(photos) < count:
        raise ValueError(f"{count} images asked, {len(photos)} available")
    return photos[:count]


def compare(batched: Dict[str, Any], single: Dict[str, Any]) -> Dict[str, Any]:
    """How one image's batched result differs from its single-image result."""
    (pan_b, info_b), (pan_s, info_s) = batched["panoptic_seg"], single["panoptic_seg"]
    inst_b, inst_s = batched["instances"], single["instances"]
    same_instances = len(inst_b) == len(inst_s) and bool(
        torch.equal(inst_b.pred_classes, inst_s.pred_classes)
        and torch.equal(inst_b.pred_masks, inst_s.pred_masks)
    )
    return {
        "panoptic_identical": bool(torch.equal(pan_b, pan_s)) and info_b == info_s,
        "instances_identical": same_instances,
        "semantic_argmax_identical": bool(
            torch.equal(batched["sem_seg"].argmax(0), single["sem_seg"].argmax(0))
        ),
        "max_abs_diff_sem_seg": float((batched["sem_seg"] - single["sem_seg"]).abs().max()),
        "max_abs_diff_instance_scores": float((inst_b.scores - inst_s.scores).abs().max())
        if same_instances and len(inst_b)
        else None,
    }


def bench_model(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    height, width = args.size
    cfg, model = build_ours(name)
    realistic_weights(model)
    model.eval()
    images = load_images(height, width, max(args.batches))
    inputs = [{"image": image, "height": height, "width": width} for image in images]
    with torch.inference_mode():
        single = [model([x])[0] for x in inputs]  # also the warm-up
        checks = {}
        for batch in args.batches:
            if batch > 1:
                outputs = model(inputs[:batch])
                checks[batch] = [compare(b, s) for b, s in zip(outputs, single)]
        times: Dict[int, List[float]] = {batch: [] for batch in args.batches}
        for _ in range(args.rounds):
            for batch in args.batches:
                start = time.perf_counter()
                model(inputs[:batch])
                times[batch].append(time.perf_counter() - start)
    result: Dict[str, Any] = {"config": cfg.MODEL.BACKBONE.NAME, "batches": {}}
    for batch in args.batches:
        median = statistics.median(times[batch])
        result["batches"][batch] = {
            "wall_s": [round(t, 3) for t in times[batch]],
            "median_wall_s": round(median, 3),
            "images_per_s": round(batch / median, 3),
            "vs_single_image": checks.get(batch),
        }
    base = result["batches"][args.batches[0]]["images_per_s"]
    for batch in args.batches:
        entry = result["batches"][batch]
        entry["throughput_gain"] = round(entry["images_per_s"] / base, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["r50", "swin_t"])
    parser.add_argument("--size", type=parse_size, default=(512, 512), help="HxW")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per batch (median)")
    add_common_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "benchmark": "batched inference throughput, detectron2 model call incl. "
        "panoptic+instance+semantic",
        "size": list(args.size),
        "environment": environment(args.threads),
        "models": {name: bench_model(name, args) for name in args.models},
    }
    result["environment"]["loadavg_end"] = list(os.getloadavg())
    write_result(result, args.out)


if __name__ == "__main__":
    main()
