"""End to end, video: ``tools/train_net.py`` trains the VIS instant config (a tiny Video
Mask2Former) on the embedded synthetic video dataset on CPU, evaluates YouTube-VIS AP, resumes and
runs --eval-only. The trainer picks the clip mappers and the YouTube-VIS evaluator from the config.

The dataset is generated into a temporary ``$DETECTRON2_DATASETS``.
"""

import importlib.util
import json
import math
import shutil
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator, List

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/quick_schedules/VIS-R50-instant.yaml"
ITERS = 20
CKPT_PERIOD = 10
pytestmark = pytest.mark.slow


def load_train_net() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_net", ROOT / "tools/train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_args(train_net: ModuleType, output_dir: Path, *extra: str) -> object:
    argv = ["--config-file", str(CONFIG), *extra]
    argv += ["OUTPUT_DIR", str(output_dir), "SOLVER.MAX_ITER", str(ITERS), "SEED", "0"]
    argv += ["SOLVER.CHECKPOINT_PERIOD", str(CKPT_PERIOD)]
    return train_net.default_argument_parser().parse_args(argv)


def read_metrics(path: Path) -> List[Dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def predictions(output_dir: Path) -> List[Dict]:
    """The YouTube-VIS results the evaluator wrote (segmentations dropped)."""
    results = json.loads((output_dir / "inference" / "results.json").read_text())
    return [{k: v for k, v in r.items() if k != "segmentations"} for r in results]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict]:
    tmp = tmp_path_factory.mktemp("train_net_video")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETECTRON2_DATASETS", str(tmp / "datasets"))
        train_net = load_train_net()
        out = tmp / "run"
        results = train_net.main(train_args(train_net, out))
        yield {"train_net": train_net, "out": out, "results": results, "tmp": tmp}


def test_trains_with_finite_losses_and_evaluates_ap(trained: Dict) -> None:
    out = trained["out"]
    metrics = read_metrics(out / "metrics.json")
    losses = [m for m in metrics if "total_loss" in m]
    assert losses and losses[-1]["iteration"] == ITERS - 1
    loss_names = {k for k in losses[-1] if k.startswith("loss_")}
    assert {"loss_ce", "loss_mask", "loss_dice", "loss_dice_2"} <= loss_names
    for record in losses:
        assert all(math.isfinite(v) for k, v in record.items() if k.startswith("loss_"))
    segm = trained["results"]["segm"]
    for key in ("AP", "AP50", "AP75", "AR1", "AR10"):
        assert math.isfinite(segm[key]) and 0 <= segm[key] <= 100, key
    assert {"AP-circle", "AP-square", "AP-triangle"} <= set(segm)
    # The submission file of the 16 val videos: 10 predictions each, one RLE per frame.
    results = json.loads((out / "inference" / "results.json").read_text())
    assert len(results) == 16 * 10
    assert {r["category_id"] for r in results} <= {1, 2, 3}
    assert all(5 <= len(r["segmentations"]) <= 10 for r in results)
    assert (out / "model_final.pth").is_file()
    assert (out / f"model_{CKPT_PERIOD - 1:07d}.pth").is_file()


def test_eval_only_loads_the_trained_weights(trained: Dict) -> None:
    train_net, out, tmp = trained["train_net"], trained["out"], trained["tmp"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETECTRON2_DATASETS", str(tmp / "datasets"))
        final = str(out / "model_final.pth")
        results = train_net.main(
            train_args(train_net, tmp / "eval", "--eval-only", "MODEL.WEIGHTS", final)
        )
        train_net.main(train_args(train_net, tmp / "eval_random", "--eval-only"))
    assert results["segm"]["AP"] == pytest.approx(trained["results"]["segm"]["AP"], abs=1e-6)
    # the same weights give the same predictions as the evaluation at the end of training ...
    assert predictions(tmp / "eval") == predictions(out)
    # ... and not those of a randomly initialised model
    assert predictions(tmp / "eval_random") != predictions(out)


def test_resume_continues_from_the_last_checkpoint(trained: Dict) -> None:
    train_net, out, tmp = trained["train_net"], trained["out"], trained["tmp"]
    resume_dir = tmp / "resume"
    resume_dir.mkdir()
    mid = f"model_{CKPT_PERIOD - 1:07d}.pth"
    shutil.copy(out / mid, resume_dir / mid)
    (resume_dir / "last_checkpoint").write_text(mid)
    mid_bytes = (resume_dir / mid).read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETECTRON2_DATASETS", str(tmp / "datasets"))
        train_net.main(train_args(train_net, resume_dir, "--resume", "DATASETS.TEST", "()"))
    assert f"Starting training from iteration {CKPT_PERIOD}" in (resume_dir / "log.txt").read_text()
    metrics = read_metrics(resume_dir / "metrics.json")
    assert max(m["iteration"] for m in metrics if "total_loss" in m) == ITERS - 1
    assert (resume_dir / "model_final.pth").is_file()
    # a run restarted from 0 would have re-written the checkpoint of iteration CKPT_PERIOD - 1
    assert (resume_dir / mid).read_bytes() == mid_bytes


def test_train_net_video_is_an_alias_of_train_net() -> None:
    spec = importlib.util.spec_from_file_location(
        "train_net_video", ROOT / "tools/train_net_video.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert Path(module.main.__code__.co_filename) == ROOT / "tools/train_net.py"
    assert Path(module.invoke_main.__code__.co_filename) == ROOT / "tools/train_net.py"
