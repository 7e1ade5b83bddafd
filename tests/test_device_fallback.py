"""Without CUDA, ``MODEL.DEVICE: cuda`` (detectron2's default, what the official YAML files mean)
falls back to the CPU with one log line, in every entry point: the official R50 COCO panoptic
recipe runs in the demo, ``DefaultPredictor``, training and evaluation with no device override
(issue 10)."""

import json
import logging
from pathlib import Path
from typing import List

import pytest
import torch
from detectron2.engine import launch
from detectron2.utils import comm
from test_train_net import (
    DATASET,
    dataset,  # noqa: F401  (a fixture)
    load_train_net,
)

from mask2former.config import build_config

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT / "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml"
# Random weights (no download) and small images; nothing about the device.
SMALL = ["MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96"]
FALLBACK = "asked, but CUDA is not available"


def fallback_lines(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]


def test_cuda_falls_back_to_cpu_with_one_log_line(
    no_cuda: None, mask2former_log: pytest.LogCaptureFixture
) -> None:
    cfg = build_config(str(OFFICIAL))
    assert cfg.MODEL.DEVICE == "cpu"
    (line,) = fallback_lines(mask2former_log)
    assert line.startswith("MODEL.DEVICE='cuda' asked, but CUDA is not available (PyTorch ")
    assert line.endswith("): using MODEL.DEVICE='cpu'.")

    mask2former_log.clear()
    assert build_config(str(OFFICIAL), ["MODEL.DEVICE", "cuda:1"]).MODEL.DEVICE == "cpu"
    assert fallback_lines(mask2former_log)[0].startswith("MODEL.DEVICE='cuda:1' asked")

    mask2former_log.clear()
    assert build_config(str(OFFICIAL), ["MODEL.DEVICE", "cpu"]).MODEL.DEVICE == "cpu"
    assert fallback_lines(mask2former_log) == []
    with pytest.raises(ValueError, match="MODEL.DEVICE='gpu'"):
        build_config(str(OFFICIAL), ["MODEL.DEVICE", "gpu"])


def test_cuda_is_kept_where_available(
    monkeypatch: pytest.MonkeyPatch, mask2former_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert build_config(str(OFFICIAL)).MODEL.DEVICE == "cuda"
    assert fallback_lines(mask2former_log) == []


def test_only_the_main_process_logs_the_fallback(
    no_cuda: None, monkeypatch: pytest.MonkeyPatch, mask2former_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(comm, "get_rank", lambda: 1)
    assert build_config(str(OFFICIAL)).MODEL.DEVICE == "cpu"
    assert fallback_lines(mask2former_log) == []


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def report_device(config_file: str, out_dir: str) -> None:
    """Worker of a multi-process launch: builds the config, writes its device and fallback lines."""
    handler = ListHandler()
    logging.getLogger("mask2former").addHandler(handler)
    cfg = build_config(config_file)
    report = {"device": cfg.MODEL.DEVICE, "lines": [x for x in handler.lines if FALLBACK in x]}
    Path(out_dir, f"rank{comm.get_rank()}.json").write_text(json.dumps(report))


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback needs a machine without CUDA")
def test_multi_process_cpu_launch_falls_back_in_every_process(tmp_path: Path) -> None:
    # What `tools/train_net.py --num-gpus 2` does on a CPU: two processes, gloo.
    launch(report_device, 2, dist_url="auto", args=(str(OFFICIAL), str(tmp_path)))
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["device"] for r in reports] == ["cpu", "cpu"]
    assert [len(r["lines"]) for r in reports] == [1, 0]


@pytest.mark.slow
@pytest.mark.usefixtures("dataset")  # registers DATASET
def test_official_yaml_trains_and_evaluates(
    no_cuda: None, tmp_path: Path, mask2former_log: pytest.LogCaptureFixture
) -> None:
    train_net = load_train_net()
    argv = ["--config-file", str(OFFICIAL), "OUTPUT_DIR", str(tmp_path), *SMALL]
    argv += ["DATASETS.TRAIN", f"('{DATASET}',)", "DATASETS.TEST", f"('{DATASET}',)"]
    argv += ["SOLVER.MAX_ITER", "1", "SOLVER.IMS_PER_BATCH", "1", "INPUT.IMAGE_SIZE", "64"]
    argv += ["DATALOADER.NUM_WORKERS", "0", "TEST.EVAL_PERIOD", "0"]
    results = train_net.main(train_net.default_argument_parser().parse_args(argv))
    assert {"panoptic_seg", "sem_seg", "segm"} <= set(results)  # evaluated after training
    assert (tmp_path / "model_final.pth").is_file()
    assert "DEVICE: cpu" in (tmp_path / "config.yaml").read_text()
    assert len(fallback_lines(mask2former_log)) == 1
