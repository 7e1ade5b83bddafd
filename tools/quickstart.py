#!/usr/bin/env python
"""Quick start: train a small Mask2Former on the embedded synthetic dataset, evaluate, draw.

    python tools/quickstart.py                      # ~8 minutes on 2 CPU cores
    python tools/quickstart.py SOLVER.MAX_ITER 200  # any config override

Generates ``$DETECTRON2_DATASETS/m2f_synthetic`` on first use, trains
``configs/quickstart/m2f_synthetic_R18ish_panoptic.yaml``, evaluates PQ, AP and mIoU on the val
split and saves prediction-next-to-ground-truth pictures to ``<OUTPUT_DIR>/vis/*.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from PIL import Image

from mask2former.config import build_config
from mask2former.engine import Trainer
from mask2former.utils.visualize import draw_panoptic, load_panoptic_ground_truth, side_by_side

CONFIG = (
    Path(__file__).resolve().parents[1] / "configs/quickstart/m2f_synthetic_R18ish_panoptic.yaml"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=str(CONFIG))
    parser.add_argument("--num-vis", type=int, default=8, help="val images to draw")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args()


def save_pictures(model: torch.nn.Module, cfg: Any, out_dir: Path, num: int) -> List[Path]:
    """Draw [input | prediction | ground truth] for the first ``num`` images of the test set."""
    dataset = cfg.DATASETS.TEST[0]
    metadata = MetadataCatalog.get(dataset)
    records = DatasetCatalog.get(dataset)[:num]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    model.eval()
    for record in records:
        image = read_image(record["file_name"], format="RGB")  # [H, W, 3] uint8
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))  # [3, H, W]
        if cfg.INPUT.FORMAT == "BGR":
            tensor = tensor.flip(0)
        inputs = {"image": tensor, "height": image.shape[0], "width": image.shape[1]}
        with torch.no_grad():
            pred_seg, pred_info = model([inputs])[0]["panoptic_seg"]
        gt_seg, gt_info = load_panoptic_ground_truth(record)
        scale = max(1.0, 288 / image.shape[0])
        panels = [
            np.asarray(
                Image.fromarray(image).resize(
                    (round(image.shape[1] * scale), round(image.shape[0] * scale)), Image.NEAREST
                )
            ),
            draw_panoptic(image, pred_seg, pred_info, metadata, scale),
            draw_panoptic(image, gt_seg, gt_info, metadata, scale),
        ]
        path = out_dir / f"{Path(record['file_name']).stem}.png"
        Image.fromarray(side_by_side(panels)).save(path)
        paths.append(path)
    return paths


def summarize(results: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """PQ / AP / mIoU (and their parts) from detectron2's evaluation results."""
    keys = {
        "panoptic_seg": ("PQ", "SQ", "RQ", "PQ_th", "PQ_st"),
        "segm": ("AP", "AP50"),
        "sem_seg": ("mIoU",),
    }
    return {
        f"{task}/{k}": round(float(results[task][k]), 2)
        for task, names in keys.items()
        if task in results
        for k in names
        if k in results[task]
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = build_config(args.config_file, args.opts)
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)  # SEED -1: a new random seed each run
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    logger = setup_logger(cfg.OUTPUT_DIR, name="mask2former")
    setup_logger(cfg.OUTPUT_DIR, name="detectron2")
    for dataset in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        DatasetCatalog.get(dataset)  # generate the synthetic data before the clock starts

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    start = time.perf_counter()
    results = trainer.train()  # evaluates DATASETS.TEST at the end
    minutes = (time.perf_counter() - start) / 60
    metrics = summarize(results or {})
    pictures = save_pictures(trainer.model, cfg, Path(cfg.OUTPUT_DIR) / "vis", args.num_vis)

    summary = {"iterations": cfg.SOLVER.MAX_ITER, "minutes": round(minutes, 2), **metrics}
    (Path(cfg.OUTPUT_DIR) / "quickstart_metrics.json").write_text(json.dumps(summary, indent=2))
    logger.info("Quick start done in %.1f min", minutes)
    print(json.dumps(summary, indent=2))
    print("Pictures (input | prediction | ground truth):")
    for path in pictures:
        print(f"  {path}")


if __name__ == "__main__":
    main()
