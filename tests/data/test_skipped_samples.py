"""Skipped bad training samples reach the log and ``metrics.json`` (through detectron2's
``EventStorage`` and ``JSONWriter``), from data-loader worker processes too, and a dataset that is
broken as a whole stops training with an error instead of skipping forever."""

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest
from detectron2.data import build_detection_train_loader
from detectron2.data.samplers import TrainingSampler
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage, JSONWriter
from PIL import Image

from mask2former.data.bad_samples import MAX_CONSECUTIVE_SKIPS, SkippedSampleCounter
from mask2former.data.mappers import MaskFormerInstanceDatasetMapper

COCO_IMAGE = Path(__file__).parent / "samples" / "coco_panoptic" / "images" / "000000439180.jpg"


def mapper() -> MaskFormerInstanceDatasetMapper:
    return MaskFormerInstanceDatasetMapper(
        True, augmentations=[], image_format="RGB", num_classes=1, size_divisibility=-1
    )


def record(file_name: str) -> Dict[str, Any]:
    polygon = [2, 2, 12, 2, 12, 12, 2, 12]
    return {
        "file_name": file_name,
        "height": 16,
        "width": 16,
        "annotations": [
            {
                "segmentation": [polygon],
                "bbox": [2, 2, 10, 10],
                "bbox_mode": 1,
                "category_id": 0,
                "iscrowd": 0,
            }
        ],
    }


def dataset(root: Path) -> List[Dict[str, Any]]:
    """2 good images, 2 missing ones and a truncated one."""
    good = []
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 50 * i, np.uint8)).save(root / f"good{i}.png")
        good.append(record(str(root / f"good{i}.png")))
    truncated = root / "truncated.jpg"
    truncated.write_bytes(COCO_IMAGE.read_bytes()[:3000])
    missing = [record(str(root / f"missing{i}.jpg")) for i in range(2)]
    return good + missing + [record(str(truncated))]


def loader(records: List[Dict[str, Any]], num_workers: int) -> SkippedSampleCounter:
    return SkippedSampleCounter(
        build_detection_train_loader(
            records,
            mapper=mapper(),
            sampler=TrainingSampler(len(records), seed=0),
            total_batch_size=2,
            aspect_ratio_grouping=False,
            num_workers=num_workers,
        )
    )


@pytest.fixture()
def log_txt(tmp_path: Path) -> Iterator[Path]:
    """As detectron2's ``setup_logger``: the project's logger at INFO into a ``log.txt`` file
    handler, which forked data-loader workers inherit."""
    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path)
    project_logger = logging.getLogger("mask2former")
    level = project_logger.level
    project_logger.addHandler(handler)
    project_logger.setLevel(logging.INFO)
    yield path
    project_logger.removeHandler(handler)
    project_logger.setLevel(level)
    handler.close()


def test_skips_from_worker_processes_reach_metrics_json(tmp_path: Path, log_txt: Path) -> None:
    records = dataset(tmp_path)
    train_loader = loader(records, num_workers=1)
    metrics = tmp_path / "metrics.json"
    with EventStorage(0) as storage:
        batches = iter(train_loader)
        for iteration in range(8):
            storage.iter = iteration
            batch = next(batches)
            assert len(batch) == 2
            assert all(Path(d["file_name"]).name.startswith("good") for d in batch)
            storage.put_scalar("total_loss", 1.0)
            storage.step()
        writer = JSONWriter(str(metrics))
        writer.write()
        writer.close()
    del batches  # stops the worker
    last = json.loads(metrics.read_text().splitlines()[-1])
    assert last["data/skipped_missing_file"] == train_loader.totals["skipped_missing_file"] >= 1
    assert (
        last["data/skipped_unreadable_file"] == train_loader.totals["skipped_unreadable_file"] >= 1
    )
    log = log_txt.read_text()
    for bad in records[2:]:
        assert f"Skipped training sample {bad['file_name']}" in log  # logged by the worker
    assert "Bad training data so far: {'skipped_missing_file'" in log  # by the main process


def test_dataset_broken_as_a_whole_raises_instead_of_skipping_forever(tmp_path: Path) -> None:
    records = [record(str(tmp_path / f"missing{i}.jpg")) for i in range(MAX_CONSECUTIVE_SKIPS + 2)]
    with pytest.raises(RuntimeError, match=f"{MAX_CONSECUTIVE_SKIPS} training samples in a row"):
        next(iter(loader(records, num_workers=0)))


def test_small_dataset_whose_every_sample_is_bad_is_an_error(tmp_path: Path, caplog) -> None:
    """Fewer bad samples than MAX_CONSECUTIVE_SKIPS: detectron2's MapDataset runs out of
    samples to try first; the error says why, and the log names each file."""
    records = [record(str(tmp_path / f"missing{i}.jpg")) for i in range(3)]
    with pytest.raises(RuntimeError, match="Every training sample was skipped as bad"):
        next(iter(loader(records, num_workers=0)))
    for bad in records:
        assert f"Skipped training sample {bad['file_name']} (missing_file)" in caplog.text


def test_counter_is_transparent_for_the_wrapped_loader() -> None:
    batches = [[{"image": 1}], [{"image": 2}]]
    counter = SkippedSampleCounter(batches)
    assert list(counter) == batches and len(counter) == 2 and counter.totals == {}
    assert counter.count(batches[0]) == 1  # other attributes are the wrapped loader's


@pytest.mark.slow  # about 13 s: builds and trains the instant model for 3 iterations
def test_trainer_writes_skip_counts_to_metrics_json(
    coco_instance_dataset: str, tmp_path: Path
) -> None:
    """tools/train_net.py's Trainer: a training set with a missing image trains on, and its
    metrics.json reports the skips."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from mask2former.config import build_config
    from mask2former.engine import Trainer

    name = "test_skipped_samples_coco_instances_with_missing_image"
    if name not in DatasetCatalog.list():
        records = DatasetCatalog.get(coco_instance_dataset)
        missing = dict(records[0], file_name=str(tmp_path / "missing.jpg"), image_id=-1)
        DatasetCatalog.register(name, lambda: records + [missing] * 5)
        metadata = MetadataCatalog.get(coco_instance_dataset).as_dict()
        metadata.pop("name")
        MetadataCatalog.get(name).set(**metadata)
    config = (
        Path(__file__).resolve().parents[2] / "configs/quick_schedules/Instance-R50-instant.yaml"
    )
    cfg = build_config(
        str(config),
        ["OUTPUT_DIR", str(tmp_path / "run"), "SEED", "0", "SOLVER.MAX_ITER", "3"]
        + ["DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", "()", "SOLVER.IMS_PER_BATCH", "2"]
        + ["INPUT.IMAGE_SIZE", "64", "MODEL.MASK_FORMER.TRAIN_NUM_POINTS", "256"],
    )
    seed_all_rng(0)  # the training sampler's seed
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    lines = (tmp_path / "run" / "metrics.json").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["iteration"] == 2 and "total_loss" in last
    assert last["data/skipped_missing_file"] >= 1  # 6 with this seed and detectron2's sampler
