"""The ADE20K sample through the semantic path of the built evaluator.

Labels are prepared as for detectron2 (``annotations_detectron2``: label - 1, 0 -> 255 ignored),
the dataset is registered the way detectron2 registers ADE20K (``load_sem_seg``, evaluator_type
"sem_seg"), and SemSegEvaluator is fed logits whose argmax is the prediction.
"""

from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from detectron2.evaluation import SemSegEvaluator
from evaluation_samples import (
    ADE_NUM_CLASSES,
    IGNORE_LABEL,
    one_hot_scores,
    prepare_ade20k_labels,
)
from PIL import Image

from mask2former.evaluation import SemanticSegEvaluator, build_evaluator

NUM_CLASSES = ADE_NUM_CLASSES
IGNORE = IGNORE_LABEL


def corrupt(gt: np.ndarray) -> np.ndarray:
    """A deliberately wrong prediction: the top-left quarter is class 3 (usually wrong)."""
    pred = np.where(gt == IGNORE, 0, gt).astype(np.int64)
    h, w = gt.shape
    pred[: h // 2, : w // 2] = 3
    return pred


def numpy_metrics(pairs: List[np.ndarray]) -> Dict[str, float]:
    """mIoU (mean over classes present in the ground truth), mACC and pixel accuracy, in %."""
    gts = np.concatenate([gt.ravel() for gt, _ in pairs])
    preds = np.concatenate([pred.ravel() for _, pred in pairs])
    valid = gts != IGNORE
    gts, preds = gts[valid], preds[valid]
    ious, accs = [], []
    for c in np.unique(gts):
        inter = np.sum((gts == c) & (preds == c))
        ious.append(inter / np.sum((gts == c) | (preds == c)))
        accs.append(inter / np.sum(gts == c))
    return {
        "mIoU": 100 * float(np.mean(ious)),
        "mACC": 100 * float(np.mean(accs)),
        "pACC": 100 * float(np.mean(gts == preds)),
    }


def run(evaluator: SemSegEvaluator, dataset: str, predict) -> tuple:
    evaluator.reset()
    pairs = []
    for record in DatasetCatalog.get(dataset):
        gt = np.asarray(Image.open(record["sem_seg_file_name"])).astype(np.int64)
        pred = predict(gt)
        evaluator.process(
            [{"file_name": record["file_name"]}], [{"sem_seg": one_hot_scores(pred, NUM_CLASSES)}]
        )
        pairs.append((gt, pred))
    return evaluator.evaluate()["sem_seg"], numpy_metrics(pairs)


def test_prepared_labels_shift_and_ignore() -> None:
    raw = np.array([[0, 1, 150]], dtype=np.uint8)
    np.testing.assert_array_equal(prepare_ade20k_labels(raw), [[255, 0, 149]])


def test_ground_truth_scores_100(make_cfg, ade_dataset: str, tmp_path: Path) -> None:
    evaluator = build_evaluator(make_cfg(), ade_dataset, output_dir=str(tmp_path))
    assert type(evaluator) is SemanticSegEvaluator
    assert isinstance(evaluator, SemSegEvaluator)
    res, ref = run(evaluator, ade_dataset, lambda gt: gt)
    assert len(DatasetCatalog.get(ade_dataset)) == 3
    assert res["mIoU"] == pytest.approx(100.0) and ref["mIoU"] == pytest.approx(100.0)
    assert res["pACC"] == pytest.approx(100.0)
    assert res["mACC"] == pytest.approx(100.0)


def test_wrong_prediction_matches_numpy(make_cfg, ade_dataset: str, tmp_path: Path) -> None:
    evaluator = build_evaluator(make_cfg(), ade_dataset, output_dir=str(tmp_path))
    res, ref = run(evaluator, ade_dataset, corrupt)
    assert ref["mIoU"] < 90 and ref["pACC"] < 90
    for key in ("mIoU", "mACC", "pACC"):
        assert res[key] == pytest.approx(ref[key], abs=1e-9), key
