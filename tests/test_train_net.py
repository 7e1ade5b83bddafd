"""End to end: ``tools/train_net.py`` trains, evaluates, resumes and runs --eval-only on CPU.

Uses the real two-image COCO panoptic sample (``tests/data/samples/coco_panoptic``) with the
instant config; the semantic PNGs and the instances json it lacks are derived in a tmp folder.
"""

import importlib.util
import json
import math
import shutil
from pathlib import Path
from types import ModuleType
from typing import Dict, List

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from mask2former.data.datasets import register_panoptic_dataset
from mask2former.data.datasets.register import panoptic_metadata
from mask2former.data.panoptic_format import rgb_to_id, semantic_from_panoptic

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests/data/samples/coco_panoptic"
CONFIG = ROOT / "configs/quick_schedules/Panoptic-R50-instant.yaml"
DATASET = "test_train_net_coco_panoptic_sample"
ITERS = 20
CKPT_PERIOD = 10


def load_train_net() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_net", ROOT / "tools/train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_ground_truth(out: Path) -> Dict[str, Path]:
    """Semantic PNGs (contiguous ids) and a COCO instances json (things, ids from 1)."""
    pan = json.loads((SAMPLE / "panoptic_examples.json").read_text())
    contiguous = {c["id"]: i for i, c in enumerate(pan["categories"])}
    isthing = {c["id"]: c["isthing"] for c in pan["categories"]}
    (out / "semantic").mkdir(parents=True)
    annotations: List[Dict] = []
    for ann in pan["annotations"]:
        ids = rgb_to_id(np.asarray(Image.open(SAMPLE / "panoptic_examples" / ann["file_name"])))
        semantic = semantic_from_panoptic(ids, ann["segments_info"], category_map=contiguous)
        Image.fromarray(semantic).save(out / "semantic" / ann["file_name"])
        for seg in ann["segments_info"]:
            if not isthing[seg["category_id"]]:
                continue
            rle = mask_utils.encode(np.asfortranarray((ids == seg["id"]).astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append(
                {
                    **seg,
                    "id": len(annotations) + 1,
                    "image_id": ann["image_id"],
                    "segmentation": rle,
                }
            )
    instances = {
        "images": pan["images"],
        "annotations": annotations,
        "categories": [c for c in pan["categories"] if c["isthing"]],
    }
    (out / "instances.json").write_text(json.dumps(instances))
    return {"semantic": out / "semantic", "instances": out / "instances.json"}


def train_args(train_net: ModuleType, output_dir: Path, *extra: str) -> object:
    argv = ["--config-file", str(CONFIG), *extra]
    argv += ["OUTPUT_DIR", str(output_dir), "DATASETS.TRAIN", f"('{DATASET}',)"]
    argv += ["DATASETS.TEST", f"('{DATASET}',)", "SOLVER.MAX_ITER", str(ITERS)]
    argv += ["SOLVER.CHECKPOINT_PERIOD", str(CKPT_PERIOD), "SOLVER.STEPS", "(15,)"]
    argv += ["MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD", "0.0", "SEED", "0"]
    return train_net.default_argument_parser().parse_args(argv)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Registers the two-image sample as DATASET (panoptic, semantic and instance ground truth)."""
    gt = write_ground_truth(tmp_path_factory.mktemp("train_net_gt"))
    register_panoptic_dataset(
        DATASET,
        panoptic_metadata(
            json.loads((SAMPLE / "panoptic_examples.json").read_text())["categories"]
        ),
        image_root=str(SAMPLE / "images"),
        panoptic_root=str(SAMPLE / "panoptic_examples"),
        panoptic_json=str(SAMPLE / "panoptic_examples.json"),
        sem_seg_root=str(gt["semantic"]),
        instances_json=str(gt["instances"]),
        replace=True,
    )
    return DATASET


@pytest.fixture(scope="module")
def trained(dataset: str, tmp_path_factory: pytest.TempPathFactory) -> Dict:
    tmp = tmp_path_factory.mktemp("train_net")
    train_net = load_train_net()
    out = tmp / "run"
    results = train_net.main(train_args(train_net, out))
    return {"train_net": train_net, "out": out, "results": results, "tmp": tmp}


def read_metrics(path: Path) -> List[Dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_trains_with_finite_losses_and_evaluates_pq_ap_miou(trained: Dict) -> None:
    out = trained["out"]
    metrics = read_metrics(out / "metrics.json")
    losses = [m for m in metrics if "total_loss" in m]
    assert losses and losses[-1]["iteration"] == ITERS - 1
    for record in losses:
        assert all(math.isfinite(v) for k, v in record.items() if k.startswith("loss_"))
    results = trained["results"]
    for task, key in (("panoptic_seg", "PQ"), ("segm", "AP"), ("sem_seg", "mIoU")):
        assert task in results, f"{task} missing from {sorted(results)}"
        assert math.isfinite(results[task][key]) and 0 <= results[task][key] <= 100
    assert (out / "model_final.pth").is_file()
    assert (out / f"model_{CKPT_PERIOD - 1:07d}.pth").is_file()


def test_eval_only_loads_the_trained_weights(trained: Dict) -> None:
    train_net, out = trained["train_net"], trained["out"]
    final = out / "model_final.pth"
    args = train_args(
        train_net, trained["tmp"] / "eval", "--eval-only", "MODEL.WEIGHTS", str(final)
    )
    results = train_net.main(args)
    # the same weights give the same predictions as the evaluation at the end of training
    for task, key in (("panoptic_seg", "PQ"), ("sem_seg", "mIoU"), ("segm", "AP")):
        assert results[task][key] == pytest.approx(trained["results"][task][key], abs=1e-6)
    # and the evaluation differs from a randomly initialized model's
    random_args = train_args(train_net, trained["tmp"] / "eval_random", "--eval-only")
    random_results = train_net.main(random_args)
    assert random_results["sem_seg"]["mIoU"] != pytest.approx(
        trained["results"]["sem_seg"]["mIoU"], abs=1e-6
    )


def test_resume_restores_iteration_lr_and_optimizer_state(trained: Dict) -> None:
    from mask2former.engine import Trainer, setup

    train_net, out = trained["train_net"], trained["out"]
    resume_dir = trained["tmp"] / "resume"
    resume_dir.mkdir()
    mid = f"model_{CKPT_PERIOD - 1:07d}.pth"
    shutil.copy(out / mid, resume_dir / mid)
    (resume_dir / "last_checkpoint").write_text(mid)
    saved = torch.load(resume_dir / mid, map_location="cpu", weights_only=False)
    assert saved["iteration"] == CKPT_PERIOD - 1

    cfg = setup(train_args(train_net, resume_dir, "--resume"))
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == CKPT_PERIOD
    assert trainer.iter == CKPT_PERIOD - 1
    saved_scheduler = next(
        v for k, v in saved["trainer"]["hooks"].items() if k.endswith("LRScheduler")
    )
    assert trainer.scheduler.state_dict() == saved_scheduler
    state = trainer.optimizer.state_dict()
    assert [g["lr"] for g in state["param_groups"]] == [
        g["lr"] for g in saved["trainer"]["_trainer"]["optimizer"]["param_groups"]
    ]
    for key, value in saved["trainer"]["_trainer"]["optimizer"]["state"].items():
        for name, tensor in value.items():
            torch.testing.assert_close(state["state"][key][name], tensor, rtol=0, atol=0)
    # iteration CKPT_PERIOD is past the warm-up and before the step at 15: the base LR
    base = cfg.SOLVER.BASE_LR
    lrs = sorted({g["lr"] for g in state["param_groups"]})
    assert lrs == pytest.approx(sorted({base, base * cfg.SOLVER.BACKBONE_MULTIPLIER}))
    del trainer

    # through the command line: --resume continues from iteration CKPT_PERIOD to the end
    mid_bytes = (resume_dir / mid).read_bytes()
    train_net.main(train_args(train_net, resume_dir, "--resume"))
    metrics = read_metrics(resume_dir / "metrics.json")
    assert max(m["iteration"] for m in metrics if "total_loss" in m) == ITERS - 1
    assert (resume_dir / "model_final.pth").is_file()
    # a run restarted from 0 would have re-written the checkpoint of iteration CKPT_PERIOD - 1
    assert (resume_dir / mid).read_bytes() == mid_bytes


def test_cpu_bfloat16_training_then_tta_evaluation(dataset: str, tmp_path: Path) -> None:
    """SOLVER.AMP with bfloat16 trains on a CPU (detectron2's SimpleTrainer + our autocast), the
    evaluation stays float32, and TEST.AUG adds a TTA evaluation whose results train() returns."""
    from mask2former.config import build_config
    from mask2former.engine import Trainer

    cfg = build_config(
        str(CONFIG),
        ["OUTPUT_DIR", str(tmp_path), "SEED", "0", "SOLVER.MAX_ITER", "2"]
        + ["DATASETS.TRAIN", f"('{dataset}',)", "DATASETS.TEST", f"('{dataset}',)"]
        + ["SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", "bfloat16"]
        + ["TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "(96,)"]
        + ["MODEL.MASK_FORMER.TEST.PANOPTIC_ON", "False"]  # TTA is semantic only
        + ["MODEL.MASK_FORMER.TEST.INSTANCE_ON", "False"],
    )
    trainer = Trainer(cfg)
    seen = []  # (training, dtype of the backbone's res5) per forward
    trainer.model.backbone.register_forward_hook(
        lambda module, args, out: seen.append((module.training, out["res5"].dtype))
    )
    trainer.resume_or_load(resume=False)
    results = trainer.train()

    assert [dtype for training, dtype in seen if training] == [torch.bfloat16] * 2
    assert {dtype for training, dtype in seen if not training} == {torch.float32}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    losses = [m for m in read_metrics(tmp_path / "metrics.json") if "total_loss" in m]
    assert losses and losses[-1]["iteration"] == 1
    assert all(math.isfinite(v) for m in losses for k, v in m.items() if k.startswith("loss_"))
    assert sorted(results) == ["sem_seg", "sem_seg_TTA"]
    assert results is trainer.last_eval_results
    for task in results.values():
        assert math.isfinite(task["mIoU"]) and 0 <= task["mIoU"] <= 100
