"""Accuracy of bfloat16 inference (``TEST.AMP.ENABLED True``, ``TEST.AMP.DTYPE bfloat16``).

1. The quick-start model (``configs/quickstart/m2f_synthetic_R18ish_panoptic.yaml``), trained for
   ``--iters`` iterations (the quick start's 1000 by default; or ``--weights`` of a trained one),
   evaluated on the quick-start val split in float32 and in bfloat16: PQ, AP and mIoU, and their
   differences (target: at most 0.5 points).
2. The official fixtures (``tests/fixtures/official_tiny{,_swin}``, the official implementation's
   weights and input): the share of pixels whose semantic argmax under bfloat16 equals the
   official float32 one and ours in float32 (target: at least 99.5%), overall and on the pixels
   whose top two float32 scores are not a near tie.

    python tools/benchmarks/bench_bf16_accuracy.py --out bench_results/bf16_accuracy.json \\
        [--iters 1000 | --weights output/quickstart/model_final.pth]

``tests/modeling/meta_arch/test_inference_amp.py`` runs the same functions with a short training.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # this checkout's package, whatever the editable install points to
    sys.path.insert(0, str(REPO))
QUICKSTART = REPO / "configs/quickstart/m2f_synthetic_R18ish_panoptic.yaml"
FIXTURES = REPO / "tests/fixtures"
BF16 = ["TEST.AMP.ENABLED", "True", "TEST.AMP.DTYPE", "bfloat16"]
METRICS = {"panoptic_seg": "PQ", "segm": "AP", "sem_seg": "mIoU"}


def quickstart_config(output_dir: Path, opts: Sequence[str] = ()) -> Any:
    """The quick-start config with ``opts``; its synthetic datasets registered (again, if a
    caller removed them from the catalog)."""
    from mask2former.config import build_config
    from mask2former.data.datasets.synthetic import register_synthetic_datasets

    register_synthetic_datasets()
    return build_config(str(QUICKSTART), ["OUTPUT_DIR", str(output_dir), *opts])


def train_quickstart(output_dir: Path, iters: int) -> Path:
    """Train the quick-start model for ``iters`` iterations (no evaluation); its weights file."""
    from detectron2.utils.env import seed_all_rng

    from mask2former.engine import Trainer

    schedule = ["SOLVER.MAX_ITER", str(iters), "SOLVER.WARMUP_ITERS", str(min(50, iters))]
    cfg = quickstart_config(output_dir, [*schedule, "DATASETS.TEST", "()"])  # no evaluation
    seed_all_rng(cfg.SEED)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    weights = output_dir / "weights.pth"
    torch.save(trainer.model.state_dict(), weights)
    return weights


def evaluate_quickstart(weights: Path, output_dir: Path, opts: Sequence[str] = ()) -> Dict:
    """PQ / AP / mIoU on the quick-start val split of the model built from the quick-start config
    plus ``opts`` (e.g. :data:`BF16`) with ``weights``."""
    from detectron2.checkpoint import DetectionCheckpointer

    from mask2former.engine import Trainer

    cfg = quickstart_config(output_dir, opts)
    model = Trainer.build_model(cfg)
    DetectionCheckpointer(model).load(str(weights))
    results = Trainer.test(cfg, model)
    return {name: round(float(results[task][name]), 3) for task, name in METRICS.items()}


def fixture_argmax_agreement(fixture: str, margin: float = 0.05) -> Dict[str, float]:
    """Semantic argmax of ours under bfloat16 against the official one and ours in float32, as
    the share of pixels that agree, on an official fixture; also on the pixels where float32's
    top two class scores differ by at least ``margin`` of the top score (random weights leave
    many pixels at a near tie, which any rounding flips)."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from mask2former.config import build_config

    fixture_dir = FIXTURES / fixture
    official = torch.load(fixture_dir / "postprocess.pth")["sem_seg_argmax"].long()  # [H, W]
    image = torch.load(fixture_dir / "input.pth")["image_uint8"]
    sem_seg = {}
    for name, opts in {"fp32": [], "bf16": BF16}.items():
        model = build_model(build_config(str(fixture_dir / "config_full.yaml"), opts)).eval()
        DetectionCheckpointer(model).load(str(fixture_dir / "state_dict.pth"))
        height, width = official.shape
        with torch.no_grad():
            [result] = model([{"image": image, "height": height, "width": width}])
        sem_seg[name] = result["sem_seg"]  # [K, H, W]
    bf16, fp32 = sem_seg["bf16"].argmax(0), sem_seg["fp32"].argmax(0)
    top2 = sem_seg["fp32"].topk(2, dim=0).values  # [2, H, W]
    clear = top2[0] - top2[1] >= margin * top2[0]  # [H, W]

    def share(a: torch.Tensor, b: torch.Tensor) -> float:
        return round(float((a == b).float().mean()), 5)

    return {
        "bf16_vs_official_fp32": share(bf16, official),
        "bf16_vs_ours_fp32": share(bf16, fp32),
        "ours_fp32_vs_official_fp32": share(fp32, official),
        "margin": margin,
        "pixels_with_margin": round(float(clear.float().mean()), 5),
        "bf16_vs_ours_fp32_with_margin": share(bf16[clear], fp32[clear]),
    }


def main() -> None:
    import tempfile

    from _bench_common import environment, write_result
    from detectron2.utils.logger import setup_logger

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=1000, help="quick-start training iterations")
    parser.add_argument("--weights", type=Path, help="a trained quick-start model instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setup_logger(name="mask2former")
    result: Dict[str, Optional[Any]] = {"environment": environment(args.threads)}
    result["fixtures"] = {
        name: fixture_argmax_agreement(name) for name in ("official_tiny", "official_tiny_swin")
    }
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or train_quickstart(Path(tmp) / "train", args.iters)
        fp32 = evaluate_quickstart(weights, Path(tmp) / "fp32")
        bf16 = evaluate_quickstart(weights, Path(tmp) / "bf16", BF16)
    result["quickstart"] = {
        "weights": str(args.weights) if args.weights else f"trained here, {args.iters} iterations",
        "fp32": fp32,
        "bf16": bf16,
        "bf16_minus_fp32": {k: round(bf16[k] - fp32[k], 3) for k in fp32},
    }
    result["environment"]["loadavg_end"] = list(os.getloadavg())
    write_result(result, args.out)


if __name__ == "__main__":
    main()
