"""Parity figures of Video Mask2Former against the official implementation, as JSON.

On the fixture ``tests/fixtures/official_tiny_video`` (outputs of the official code on a tiny
model, see its README), with the model built as ``tests/test_video_parity.py`` builds it (our
YouTube-VIS 2019 R50 recipe plus the fixture's overrides, official weights): the largest relative
difference (max |ours - official| / max |official|) of every raw output, how the 10 predictions
of the eval-mode result compare (labels, scores, mask pixels), and every train-mode loss against
the official 32-seed distribution of ``loss.json`` (in standard deviations from the mean, and
relative to the official seed-0 value: seed 0 draws the same random numbers in the same order).

    python tools/benchmarks/bench_video_parity.py --out bench_results/video_parity.json
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict

import torch
from bench_common import machine_facts, write_results

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the fixture helpers of the tests

from tests.helpers.official_fixtures import (  # noqa: E402
    VIDEO_FIXTURE,
    video_fixture_model,
    video_fixture_training_clip,
)


def relative_difference(ours: torch.Tensor, official: torch.Tensor) -> float:
    return float((ours - official).abs().max() / official.abs().max())


def raw_output_figures(model: torch.nn.Module) -> Dict[str, float]:
    """Max relative difference of the mask features and of each decoder layer's outputs."""
    inputs = torch.load(VIDEO_FIXTURE / "input.pth")["images_normalized_padded"]
    raw = torch.load(VIDEO_FIXTURE / "raw_outputs.pth")
    with torch.no_grad():
        features = model.backbone(inputs)
        _, mask_features = model.sem_seg_head.predictor_inputs(features)
        outputs = model.sem_seg_head(features)
    figures = {
        "pixel_decoder.mask_features": relative_difference(
            mask_features, raw["pixel_decoder.mask_features"]
        )
    }
    layers = [("", outputs)] + [
        (f"aux_outputs.{i}.", o) for i, o in enumerate(outputs["aux_outputs"])
    ]
    for prefix, prediction in layers:
        for key in ("pred_logits", "pred_masks"):
            figures[prefix + key] = relative_difference(prediction[key], raw[prefix + key])
    return figures


def prediction_figures(model: torch.nn.Module) -> Dict[str, Any]:
    """The eval-mode result against the official ``inference.pth``."""
    frames = torch.load(VIDEO_FIXTURE / "input.pth")["frames_uint8"]
    ref = torch.load(VIDEO_FIXTURE / "inference.pth")
    height, width = json.loads((VIDEO_FIXTURE / "inference.json").read_text())["image_size"]
    with torch.no_grad():
        result = model([{"image": list(frames), "height": height, "width": width}])
    masks = torch.stack(result["pred_masks"])
    return {
        "predictions": len(result["pred_labels"]),
        "same_labels": result["pred_labels"] == ref["pred_labels"].tolist(),
        "max_score_abs_diff": float(
            (torch.tensor(result["pred_scores"]) - ref["pred_scores"]).abs().max()
        ),
        "differing_mask_pixels": int((masks != ref["pred_masks"]).sum()),
        "mask_pixels": masks.numel(),
    }


def loss_figures(model: torch.nn.Module) -> Dict[str, Dict[str, float]]:
    """Each weighted loss at seed 0: its value, (value - mean) / std over the official seeds,
    its relative difference from that mean and from the official seed-0 value."""
    reference = json.loads((VIDEO_FIXTURE / "loss.json").read_text())
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        losses = model([video_fixture_training_clip()])
    model.eval()
    figures = {}
    for key, value in losses.items():
        mean, std, seed0 = (reference[k][key] for k in ("mean", "std", "seed0"))
        figures[key] = {
            "ours": round(value.item(), 6),
            # loss_ce draws no random numbers: std 0 over the seeds
            "std_from_mean": round((value.item() - mean) / std, 3) if std > 0 else None,
            "rel_diff_mean": abs(value.item() - mean) / abs(mean),
            "rel_diff_seed0": abs(value.item() - seed0) / abs(seed0),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = video_fixture_model()
    raw = raw_output_figures(model)
    losses = loss_figures(model)
    results = {
        **machine_facts(),
        "fixture": str(VIDEO_FIXTURE.relative_to(REPO)),
        "max_rel_diff_raw_outputs": max(raw.values()),
        "raw_outputs": raw,
        "predictions": prediction_figures(model),
        "max_abs_std_from_mean_losses": max(
            abs(f["std_from_mean"]) for f in losses.values() if f["std_from_mean"] is not None
        ),
        "max_rel_diff_seed0_losses": max(f["rel_diff_seed0"] for f in losses.values()),
        "losses": losses,
    }
    write_results(results, args.out)


if __name__ == "__main__":
    main()
