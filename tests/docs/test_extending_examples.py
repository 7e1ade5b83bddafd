"""The extension examples of ``docs/extending.md`` run (issue 8: "the extension examples in docs/
are executed by tests").

``docs/examples/train_net_with_extensions.py`` is imported as a user runs it (it registers every
example component and imports ``tools/train_net.py``); then, for each example, a tiny model trains
for 2 iterations on CPU with the example's YAML file on a 64x64 copy of the example dataset, is
evaluated, and is checked to have used the component.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image
from torch.nn import functional as F

from mask2former.data.datasets.synthetic import SyntheticSplit, generate_synthetic_split
from mask2former.engine import Trainer, setup

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs/examples"
ITERS = 2
# Tiny settings for every run: 64x64 images, batch 2, 2 predictions, 1 encoder layer.
TINY = [
    "SOLVER.MAX_ITER", str(ITERS), "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "0",
    "INPUT.IMAGE_SIZE", "64", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64",
    "MODEL.MASK_FORMER.DEC_LAYERS", "2", "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1",
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS", "256", "DATALOADER.NUM_WORKERS", "0", "SEED", "0",
]  # fmt: skip
# The quick-start based examples train on the example dataset instead of the 320-image one.
ON_MY_SHAPES = [
    "DATASETS.TRAIN", "('my_shapes_panoptic_train',)",
    "DATASETS.TEST", "('my_shapes_panoptic_val',)",
]  # fmt: skip


@pytest.fixture(scope="module")
def datasets_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``$DETECTRON2_DATASETS`` holding ``my_shapes/{train,val}`` (4 and 2 images, 64x64) in the
    layout custom_dataset.py reads."""
    root = tmp_path_factory.mktemp("datasets")
    for split, num_images, seed in (("train", 4, 0), ("val", 2, 1)):
        generate_synthetic_split(
            root / "my_shapes" / split, SyntheticSplit(split, num_images, 64, seed)
        )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETECTRON2_DATASETS", str(root))
        yield root


@pytest.fixture(scope="module")
def runner(datasets_root: Path) -> Iterator[ModuleType]:
    """``docs/examples/train_net_with_extensions.py``, imported (its ``__main__`` block not run)."""
    saved_path = list(sys.path)
    spec = importlib.util.spec_from_file_location(
        "train_net_with_extensions", EXAMPLES / "train_net_with_extensions.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path[:] = saved_path


def example(name: str) -> ModuleType:
    """An example module, as registered by importing the runner (imported once per process)."""
    return sys.modules[name]


def parse_args(runner: ModuleType, config: str, out: Path, *opts: str) -> Any:
    argv = ["--config-file", str(EXAMPLES / config), *opts, *TINY, "OUTPUT_DIR", str(out)]
    return runner.train_net.default_argument_parser().parse_args(argv)


def build_trainer(runner: ModuleType, config: str, out: Path, *opts: str) -> Trainer:
    """What ``train_net.main`` does before ``train()``, keeping the trainer for inspection."""
    trainer = Trainer(setup(parse_args(runner, config, out, *opts)))
    trainer.resume_or_load(resume=False)
    return trainer


def train(runner: ModuleType, config: str, out: Path, *opts: str) -> Tuple[Trainer, Dict]:
    trainer = build_trainer(runner, config, out, *opts)
    return trainer, trainer.train()


def logged_losses(out: Path) -> List[Dict[str, float]]:
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    return [r for r in records if "total_loss" in r]


def check_trained_and_evaluated(out: Path, results: Dict) -> None:
    losses = logged_losses(out)
    assert losses and losses[-1]["iteration"] == ITERS - 1
    assert all(math.isfinite(v) for r in losses for k, v in r.items() if k.startswith("loss"))
    for task, metric in (("panoptic_seg", "PQ"), ("sem_seg", "mIoU"), ("segm", "AP")):
        assert 0 <= results[task][metric] <= 100, (task, results.get(task))


def test_custom_dataset_registers_panoptic_and_semantic_splits_and_trains(
    runner: ModuleType, tmp_path: Path
) -> None:
    panoptic = DatasetCatalog.get("my_shapes_panoptic_val")
    assert len(panoptic) == 2
    assert {s["isthing"] for r in panoptic for s in r["segments_info"]} == {True, False}
    meta = MetadataCatalog.get("my_shapes_panoptic_val")
    assert meta.evaluator_type == "coco_panoptic_seg"
    assert meta.thing_classes == ["circle", "square", "triangle"]
    assert Path(meta.json_file).is_file()  # resolved against $DETECTRON2_DATASETS
    semantic = DatasetCatalog.get("my_shapes_sem_seg_train")
    assert len(semantic) == 4
    assert all(Path(r["file_name"]).stem == Path(r["sem_seg_file_name"]).stem for r in semantic)
    assert MetadataCatalog.get("my_shapes_sem_seg_train").evaluator_type == "sem_seg"

    trainer, results = train(runner, "custom_dataset.yaml", tmp_path)
    assert trainer.cfg.DATASETS.TRAIN == ("my_shapes_panoptic_train",)
    check_trained_and_evaluated(tmp_path, results)


def test_custom_backbone_is_built_and_trained(runner: ModuleType, tmp_path: Path) -> None:
    backbone_cls = example("custom_backbone").TinyConvBackbone
    trainer = build_trainer(runner, "custom_backbone.yaml", tmp_path, *ON_MY_SHAPES)
    backbone = trainer.model.backbone
    assert type(backbone) is backbone_cls
    results = trainer.train()
    check_trained_and_evaluated(tmp_path, results)
    assert backbone.stem.weight.grad.abs().sum() > 0  # the losses reach the backbone

    shapes = backbone.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        "res2": (32, 4),
        "res3": (64, 8),
        "res4": (128, 16),
        "res5": (256, 32),
    }
    features = backbone(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape[1:]) for k, v in features.items()} == {
        k: (v.channels, 64 // v.stride, 96 // v.stride) for k, v in shapes.items()
    }


def test_custom_pixel_decoder_is_built_and_trained(runner: ModuleType, tmp_path: Path) -> None:
    decoder_cls = example("custom_pixel_decoder").LateralSumPixelDecoder
    trainer = build_trainer(runner, "custom_pixel_decoder.yaml", tmp_path, *ON_MY_SHAPES)
    decoder = trainer.model.sem_seg_head.pixel_decoder
    assert type(decoder) is decoder_cls
    results = trainer.train()
    check_trained_and_evaluated(tmp_path, results)
    for lateral in decoder.laterals:  # the losses reach every level (res5 through the sums)
        assert lateral.weight.grad.abs().sum() > 0

    features = {
        f"res{i}": torch.randn(2, 64 * 2 ** (i - 2), 256 // 2**i, 256 // 2**i) for i in range(2, 6)
    }  # the quick-start ResNet-18's features of a 256x256 image
    decoder.eval()
    mask_features, encoder_features, multi_scale = decoder.forward_features(features)
    assert mask_features.shape == (2, 64, 64, 64) and encoder_features is None
    assert [tuple(x.shape[-2:]) for x in multi_scale] == [(8, 8), (16, 16), (32, 32)]


def test_custom_criterion_adds_its_loss_to_every_prediction(
    runner: ModuleType, tmp_path: Path
) -> None:
    criterion_cls = example("custom_criterion").SetCriterionWithFullMaskDice
    trainer, results = train(runner, "custom_criterion.yaml", tmp_path, *ON_MY_SHAPES)
    criterion = trainer.model.criterion
    assert type(criterion) is criterion_cls
    # DEC_LAYERS 2: the final prediction and one auxiliary one, each with the new loss.
    assert criterion.weight_dict["loss_full_mask_dice"] == trainer.cfg.MODEL.MASK_FORMER.DICE_WEIGHT
    assert criterion.weight_dict["loss_full_mask_dice_0"] == criterion.weight_dict["loss_dice_0"]
    for record in logged_losses(tmp_path):
        assert {"loss_full_mask_dice", "loss_full_mask_dice_0", "loss_dice"} <= set(record)
    check_trained_and_evaluated(tmp_path, results)

    # The loss itself: ~0 for masks predicted right, ~1 per mask for masks predicted inside out.
    target = torch.zeros(2, 32, 32, dtype=torch.bool)
    target[0, 4:20, 8:30] = True
    target[1, 16:, :12] = True
    targets = [{"labels": torch.tensor([0, 4]), "masks": target}]
    right = (target.float() * 2 - 1)[None] * 20  # [1, 2, 32, 32] logits
    indices = [(torch.tensor([1, 0]), torch.tensor([1, 0]))]
    good = criterion.loss_full_mask_dice({"pred_masks": right}, targets, indices, 2.0)
    bad = criterion.loss_full_mask_dice({"pred_masks": -right}, targets, indices, 2.0)
    assert good["loss_full_mask_dice"].item() < 0.01
    assert bad["loss_full_mask_dice"].item() > 0.95


def test_custom_evaluator_matches_detectron2_pixel_accuracy_with_eval_only(
    runner: ModuleType, tmp_path: Path
) -> None:
    evaluator_module = example("custom_evaluator")
    assert MetadataCatalog.get("my_shapes_pixel_accuracy_val").evaluator_type == "pixel_accuracy"
    results = runner.train_net.main(
        parse_args(runner, "custom_evaluator.yaml", tmp_path, "--eval-only")
    )
    ours = results["my_shapes_pixel_accuracy_val"]["pixel_accuracy"]["pACC"]
    # detectron2's SemSegEvaluator of the same labels reports the same pixel accuracy.
    reference = results["my_shapes_sem_seg_val"]["sem_seg"]["pACC"]
    assert ours == pytest.approx(reference, abs=1e-6)

    evaluator = evaluator_module.PixelAccuracyEvaluator("my_shapes_pixel_accuracy_val")
    record = DatasetCatalog.get("my_shapes_pixel_accuracy_val")[0]
    label = torch.from_numpy(np.array(Image.open(record["sem_seg_file_name"]))).long()
    scores = F.one_hot(label, 6).permute(2, 0, 1).float()  # [6, H, W], right everywhere
    evaluator.reset()
    evaluator.process([{"file_name": record["file_name"]}], [{"sem_seg": scores}])
    assert evaluator.evaluate() == {"pixel_accuracy": {"pACC": 100.0}}
