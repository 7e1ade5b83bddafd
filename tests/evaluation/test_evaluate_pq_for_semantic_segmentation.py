"""tools/evaluate_pq_for_semantic_segmentation.py: PQ of semantic predictions."""

from pathlib import Path
from typing import List, Tuple

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog
from detectron2.evaluation import SemSegEvaluator
from evaluation_samples import ADE_NUM_CLASSES, IGNORE_LABEL, load_tool, one_hot_scores
from PIL import Image

tool = load_tool("evaluate_pq_for_semantic_segmentation")


def synthetic_pairs() -> List[Tuple[np.ndarray, np.ndarray]]:
    """Two images, 4 classes, 255 = VOID.

    Image 1 (4x12): GT cols 0-4 class 0, 5-9 class 1, 10-11 VOID; prediction cols 0-6 class 0,
    7-9 class 1, 10-11 class 2 (only on VOID). Image 2 (4x4): GT class 0, prediction class 3.
    """
    gt1 = np.array([[0] * 5 + [1] * 5 + [255] * 2] * 4)
    pred1 = np.array([[0] * 7 + [1] * 3 + [2] * 2] * 4)
    gt2, pred2 = np.zeros((4, 4), np.int64), np.full((4, 4), 3)
    return [(gt1, pred1), (gt2, pred2)]


def test_synthetic_pq_by_hand() -> None:
    res = tool.evaluate_semantic_pq(synthetic_pairs(), num_classes=4, ignore_label=255)
    # class 0: image 1 IoU 20/28 > 0.5 (TP), image 2 missed (FN); class 1: IoU 12/20 (TP);
    # class 2 lies on VOID only (ignored, no FP); class 3: a false positive.
    pq = {0: (20 / 28) / 1.5, 1: 12 / 20, 3: 0.0}
    sq = {0: 20 / 28, 1: 12 / 20, 3: 0.0}
    rq = {0: 1 / 1.5, 1: 1.0, 3: 0.0}
    assert res["n"] == 3
    assert res["PQ"] == pytest.approx(100 * sum(pq.values()) / 3)
    assert res["SQ"] == pytest.approx(100 * sum(sq.values()) / 3)
    assert res["RQ"] == pytest.approx(100 * sum(rq.values()) / 3)
    assert res["per_class"][2] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}
    # mIoU over classes in GT or prediction (off VOID): class 0 20/44, class 1 12/20, class 3 0.
    assert res["mIoU"] == pytest.approx(100 * (20 / 44 + 12 / 20) / 3)


def test_iou_must_exceed_half() -> None:
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])  # class 0 IoU exactly 0.5: no match
    res = tool.evaluate_semantic_pq([(gt, pred)], num_classes=2, ignore_label=255)
    per_class = res["per_class"]
    assert per_class[0]["pq"] == 0.0 and per_class[1]["pq"] == pytest.approx(2 / 3)


def test_label_map_from_rles() -> None:
    masks = np.zeros((2, 3, 4), np.uint8)
    masks[0, :, :2] = 1
    masks[1, :, 3] = 1
    anns = []
    for category_id, mask in zip((10, 20), masks):
        anns.append({"category_id": category_id, "segmentation": mask_util.encode(mask.copy("F"))})
    label_map = tool.predictions_to_label_map(anns, (3, 4), {10: 0, 20: 1}, void_label=255)
    np.testing.assert_array_equal(label_map, [[0, 0, 255, 1]] * 3)
    with pytest.raises(ValueError, match="category_id 30"):
        tool.predictions_to_label_map(
            [dict(anns[0], category_id=30)], (3, 4), {10: 0, 20: 1}, void_label=255
        )


def test_no_segments_is_an_error() -> None:
    void = np.full((2, 2), 255)
    with pytest.raises(ValueError, match="PQ is undefined"):
        tool.evaluate_semantic_pq([(void, void)], num_classes=2, ignore_label=255)


def write_predictions(dataset: str, output_dir: Path, corrupt: bool) -> List[Tuple]:
    """Run SemSegEvaluator on GT-derived predictions; it writes sem_seg_predictions.json."""
    evaluator = SemSegEvaluator(dataset, distributed=False, output_dir=str(output_dir))
    evaluator.reset()
    pairs = []
    for record in DatasetCatalog.get(dataset):
        gt = np.asarray(Image.open(record["sem_seg_file_name"])).astype(np.int64)
        pred = np.where(gt == IGNORE_LABEL, 0, gt)
        if corrupt:
            pred[: gt.shape[0] // 2, : gt.shape[1] // 3] = 7
        scores = one_hot_scores(pred, ADE_NUM_CLASSES)  # [K, H, W]
        evaluator.process([{"file_name": record["file_name"]}], [{"sem_seg": scores}])
        pairs.append((gt, pred))
    evaluator.evaluate()
    return pairs


def test_ade20k_ground_truth_gives_pq_100(ade_dataset: str, tmp_path: Path) -> None:
    write_predictions(ade_dataset, tmp_path, corrupt=False)
    json_file = str(tmp_path / "sem_seg_predictions.json")
    res = tool.main(["--dataset-name", ade_dataset, "--json-file", json_file])
    assert res["PQ"] == pytest.approx(100.0) and res["mIoU"] == pytest.approx(100.0)
    assert res["n"] > 5


def test_ade20k_wrong_prediction_matches_direct_evaluation(
    ade_dataset: str, tmp_path: Path
) -> None:
    pairs = write_predictions(ade_dataset, tmp_path, corrupt=True)
    json_file = str(tmp_path / "sem_seg_predictions.json")
    res = tool.main(["--dataset-name", ade_dataset, "--json-file", json_file])
    direct = tool.evaluate_semantic_pq(pairs, ADE_NUM_CLASSES, IGNORE_LABEL)
    assert res["PQ"] < 95
    for key in ("PQ", "SQ", "RQ", "mIoU", "n"):
        assert res[key] == pytest.approx(direct[key]), key


def test_unregistered_dataset(tmp_path: Path) -> None:
    json_file = tmp_path / "p.json"
    json_file.write_text("[]")
    with pytest.raises(KeyError, match="m2f_no_such_dataset"):
        tool.main(["--dataset-name", "m2f_no_such_dataset", "--json-file", str(json_file)])
