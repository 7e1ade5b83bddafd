"""YouTube-VIS evaluation: the golden numbers of the official YTVOSeval, and the evaluator's path
model outputs -> results.json -> AP (ground truth fed back scores 100, no prediction scores 0)."""

import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm

from mask2former import add_maskformer2_video_config
from mask2former.data.datasets import register_ytvis_instances
from mask2former.evaluation import (
    YTVISEvaluator,
    build_evaluator,
    evaluate_ytvis,
    video_output_to_ytvis_results,
)
from mask2former.evaluation.ytvis_eval import STAT_NAMES, _predicted_track, _track_ious

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "samples" / "ytvis_golden"
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10")


def _load(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


@pytest.fixture(scope="module")
def golden_dataset() -> str:
    """The golden ground truth registered as a YouTube-VIS dataset (no frames needed)."""
    name = "test_ytvis_golden"
    if name not in DatasetCatalog.list():
        register_ytvis_instances(name, {}, str(GOLDEN / "gt.json"), str(GOLDEN / "frames"))
        categories = _load("gt.json")["categories"]
        MetadataCatalog.get(name).set(
            thing_classes=[c["name"] for c in categories],
            thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(categories)},
        )
    return name


def _decode(segmentations: List[Any], height: int, width: int) -> torch.Tensor:
    """[T, H, W] bool masks of per-frame RLEs (None: empty frame)."""
    return torch.stack(
        [
            torch.from_numpy(mask_util.decode(s).astype(bool))
            if s
            else torch.zeros(height, width, dtype=torch.bool)
            for s in segmentations
        ]
    )


def _model_outputs(tracks: List[Dict[str, Any]], scores: List[float]) -> List[Dict[str, Any]]:
    """Per video, the (input, output) of the official video model for these tracks: dataset
    category ids 1..6 of the golden become contiguous labels 0..5."""
    gt = _load("gt.json")
    pairs = []
    for video in gt["videos"]:
        h, w = video["height"], video["width"]
        mine = [(t, s) for t, s in zip(tracks, scores) if t["video_id"] == video["id"]]
        output = {
            "image_size": (h, w),
            "pred_scores": [s for _, s in mine],
            "pred_labels": [t["category_id"] - 1 for t, _ in mine],
            "pred_masks": [_decode(t["segmentations"], h, w) for t, _ in mine],
        }
        pairs.append(({"video_id": video["id"], "length": video["length"]}, output))
    return pairs


def _run(evaluator: YTVISEvaluator, pairs: List) -> Dict[str, Dict[str, float]]:
    evaluator.reset()
    for video_input, output in pairs:
        evaluator.process([video_input], output)
    return evaluator.evaluate()


def test_golden_reproduces_official_stats() -> None:
    expected = _load("expected_stats.json")["stats"]
    result = evaluate_ytvis(_load("gt.json"), _load("results.json"))
    assert set(result.stats) == set(STAT_NAMES) == set(expected)
    for name, value in expected.items():
        assert result.stats[name] == pytest.approx(value, abs=1e-6), name


@pytest.fixture(scope="module")
def golden_predictions() -> List:
    """The golden results as (input, model output) pairs, one per video."""
    results = _load("results.json")
    return _model_outputs(results, [r["score"] for r in results])


def test_golden_through_evaluator(
    golden_dataset: str, golden_predictions: List, tmp_path: Path
) -> None:
    """The golden predictions as model outputs (masks, contiguous labels) give the same AP."""
    results = _load("results.json")
    evaluator = YTVISEvaluator(golden_dataset, output_dir=str(tmp_path))
    metrics = _run(evaluator, golden_predictions)["segm"]
    expected = _load("expected_stats.json")["stats_x100"]
    for name in METRICS:
        assert metrics[name] == pytest.approx(expected[name], abs=1e-4), name
    written = json.loads((tmp_path / "results.json").read_text())
    assert len(written) == len(results)
    # Submission format: dataset category ids, one compressed RLE (str counts) per frame.
    by_score = {round(r["score"], 9): r for r in written}
    for reference in results:
        mine = by_score[round(reference["score"], 9)]
        assert mine["video_id"] == reference["video_id"]
        assert mine["category_id"] == reference["category_id"]
        assert [isinstance(s["counts"], str) for s in mine["segmentations"]] == [True] * 5
        ours = mask_util.decode(mine["segmentations"])
        theirs = mask_util.decode(reference["segmentations"])
        assert np.array_equal(ours, theirs)


def test_ground_truth_as_predictions_scores_100(golden_dataset: str) -> None:
    tracks = _load("gt.json")["annotations"]
    metrics = _run(YTVISEvaluator(golden_dataset), _model_outputs(tracks, [1.0] * len(tracks)))
    segm = metrics["segm"]
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR10"):
        assert segm[name] == pytest.approx(100.0), name
    assert 0 < segm["AR1"] < 100  # several tracks per video, one prediction kept
    assert all(segm[f"AP-class{k}"] == pytest.approx(100.0) for k in range(1, 7))


def test_zero_predictions_score_zero(golden_dataset: str, tmp_path: Path) -> None:
    evaluator = YTVISEvaluator(golden_dataset, output_dir=str(tmp_path))
    segm = _run(evaluator, [])["segm"]
    for name in METRICS:
        assert segm[name] == 0.0, name  # every area range has ground truth: 0, not NaN
    assert json.loads((tmp_path / "results.json").read_text()) == []


def test_only_no_object_outputs_score_zero_through_the_registry(
    golden_dataset: str, tmp_path: Path
) -> None:
    """A video model that predicts only "no object" returns empty lists for every video."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_maskformer2_video_config(cfg)
    cfg.OUTPUT_DIR = str(tmp_path)
    evaluator = build_evaluator(cfg, golden_dataset)
    assert isinstance(evaluator, YTVISEvaluator)
    outputs = _model_outputs([], [])  # per video: empty scores, labels and masks
    assert all(output["pred_masks"] == [] for _, output in outputs)
    segm = _run(evaluator, outputs)["segm"]
    for name in METRICS:
        assert segm[name] == 0.0, name
    assert all(segm[f"AP-class{k}"] == 0.0 for k in range(1, 7))


def test_evaluator_gathers_across_processes(
    golden_dataset: str, golden_predictions: List, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ranks' predictions are gathered and scored together on the main process."""
    pairs = golden_predictions
    single = _run(YTVISEvaluator(golden_dataset, distributed=False), pairs)
    other_rank = YTVISEvaluator(golden_dataset, distributed=False)
    for video_input, output in pairs[1::2]:
        other_rank.process([video_input], output)
    main = YTVISEvaluator(golden_dataset, distributed=True)
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: [data, other_rank._predictions])
    main.reset()
    for video_input, output in pairs[0::2]:
        main.process([video_input], output)
    assert main.evaluate() == single
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert main.evaluate() == {}


def test_test_split_writes_results_only(tmp_path: Path) -> None:
    gt = _load("gt.json")
    del gt["annotations"]
    (tmp_path / "test.json").write_text(json.dumps(gt))
    name = "test_ytvis_golden_no_annotations"
    register_ytvis_instances(name, {}, str(tmp_path / "test.json"), str(tmp_path), replace=True)
    MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id = {i: i - 1 for i in range(1, 7)}
    results = _load("results.json")[:4]
    out = tmp_path / "out"
    metrics = _run(YTVISEvaluator(name, output_dir=str(out)), _model_outputs(results, [0.5] * 4))
    assert metrics == {}
    written = json.loads((out / "results.json").read_text())
    assert [r["category_id"] for r in written] == [r["category_id"] for r in results]


def test_evaluator_chosen_by_registry(tmp_path: Path) -> None:
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_maskformer2_video_config(cfg)
    cfg.OUTPUT_DIR = str(tmp_path)
    for name in ("ytvis_2019_val", "ytvis_2021_test", "m2f_synthetic_video_val"):
        assert isinstance(build_evaluator(cfg, name), YTVISEvaluator)


def test_bad_outputs_raise(golden_dataset: str) -> None:
    output = {
        "image_size": (360, 640),
        "pred_scores": [0.5],
        "pred_labels": [0],
        "pred_masks": [torch.zeros(5, 360, 640, dtype=torch.bool)],
    }
    with pytest.raises(ValueError, match="shape"):
        video_output_to_ytvis_results(1, output, num_frames=4)
    with pytest.raises(ValueError, match="pred_labels"):
        video_output_to_ytvis_results(1, dict(output, pred_labels=[0, 1]))
    evaluator = YTVISEvaluator(golden_dataset, distributed=False)
    evaluator.process([{"video_id": 1, "length": 5}], dict(output, pred_labels=[6]))
    with pytest.raises(ValueError, match="class 6"):
        evaluator.evaluate()
    result = video_output_to_ytvis_results(99, output)
    with pytest.raises(ValueError, match="video 99"):
        evaluate_ytvis(_load("gt.json"), result)


def test_track_iou_is_summed_over_frames() -> None:
    """Per-video IoU = sum of intersections / sum of unions, absent frames included, against a
    direct numpy computation on random masks."""
    rng = np.random.default_rng(0)
    frames, h, w = 4, 20, 30
    video = {"id": 1, "height": h, "width": w, "length": frames}

    def random_track(index: int) -> Dict[str, Any]:
        masks = rng.random((frames, h, w)) < rng.uniform(0.1, 0.6)
        masks[rng.integers(frames)] = False  # absent in one frame
        segms = [
            mask_util.encode(np.asfortranarray(m.astype(np.uint8))) if m.any() else None
            for m in masks
        ]
        return {"score": 1.0 - index / 10, "segmentations": segms, "masks": masks}

    preds, gts = [random_track(i) for i in range(3)], [random_track(i) for i in range(2)]
    ious = _track_ious(
        [_predicted_track(i, p, video) for i, p in enumerate(preds)],
        [_predicted_track(i, g, video) for i, g in enumerate(gts)],
    )
    for i, p in enumerate(preds):
        for j, g in enumerate(gts):
            inter = np.logical_and(p["masks"], g["masks"]).sum()
            union = np.logical_or(p["masks"], g["masks"]).sum()
            assert ious[i, j] == pytest.approx(inter / union, abs=1e-12)


def test_size_range_uses_the_mean_over_present_frames() -> None:
    """A 150x150 track present in 2 of 4 frames is 'medium' (mean over its present frames
    22500 >= 128^2), not 'small' (its mean over all 4 frames would be 11250)."""
    h, w = 300, 300
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[:150, :150] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    segms = [rle, None, rle, None]
    track = {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": segms}
    gt = {
        "videos": [{"id": 1, "height": h, "width": w, "length": 4}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [dict(track, areas=[22500.0, None, 22500.0, None])],
    }
    prediction = {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": segms}
    result = evaluate_ytvis(gt, [prediction])
    assert result.stats["AP"] == pytest.approx(1.0)
    assert result.stats["APm"] == pytest.approx(1.0)
    assert result.stats["APs"] == -1 and result.stats["APl"] == -1
