"""Official checkpoint formats load through detectron2's ``DetectionCheckpointer`` exactly.

The official model zoo ships detectron2 pickles (``{"model": {name: ndarray}, "__author__": ...}``);
training writes ``.pth`` files (``{"model": state_dict, "iteration": ...}``); the fixture is a plain
dict of tensors without ``_metadata``. All must load with no missing and no unexpected keys.
"""

import pickle
from pathlib import Path
from typing import Dict

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.modeling import build_model

import mask2former.modeling.backbone  # noqa: F401  (registers D2SwinTransformer)
import mask2former.modeling.heads  # noqa: F401  (registers MaskFormerHead)
import mask2former.modeling.meta_arch  # noqa: F401  (registers MaskFormer)
from tests.helpers.official_fixtures import FIXTURES, official_cfg


class RecordingCheckpointer(DetectionCheckpointer):
    """Keeps the incompatible keys that ``load`` only logs."""

    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


def _cfg(fixture: str = "official_tiny", **overrides) -> CfgNode:
    cfg = official_cfg(FIXTURES / fixture)
    cfg.merge_from_list([item for kv in overrides.items() for item in kv])
    return cfg


def _build(cfg: CfgNode, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg)


def _load(model: torch.nn.Module, path: Path) -> RecordingCheckpointer:
    checkpointer = RecordingCheckpointer(model)
    checkpointer.load(str(path))
    incompatible = checkpointer.incompatible
    assert incompatible.missing_keys == []
    assert incompatible.unexpected_keys == []
    assert incompatible.incorrect_shapes == []
    return checkpointer


def _assert_state_equal(model: torch.nn.Module, expected: Dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], torch.as_tensor(value)), key


def _save_pkl(state: Dict[str, torch.Tensor], path: Path) -> None:
    """A detectron2 model-zoo pickle, as the official release (and its converters) write."""
    data = {"model": {k: v.numpy() for k, v in state.items()}, "__author__": "Mask2Former test"}
    with open(path, "wb") as f:
        pickle.dump(data, f)


@pytest.fixture(scope="module")
def official_state() -> Dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "official_tiny" / "state_dict.pth")


def test_fixture_state_dict_is_a_plain_dict(official_state) -> None:
    assert getattr(official_state, "_metadata", None) is None
    assert "criterion.empty_weight" in official_state


@pytest.mark.parametrize("file_format", ["pkl", "pth_training", "plain"])
def test_official_weights_load_without_missing_or_unexpected_keys(
    tmp_path: Path, official_state, file_format: str
) -> None:
    if file_format == "pkl":
        path = tmp_path / "model_final.pkl"
        _save_pkl(official_state, path)
    elif file_format == "pth_training":
        path = tmp_path / "model_0000999.pth"
        torch.save({"model": dict(official_state), "iteration": 999}, path)
    else:
        path = FIXTURES / "official_tiny" / "state_dict.pth"
    model = _build(_cfg(), seed=123)
    _load(model, path)
    _assert_state_equal(model, official_state)


# Key sets of other official config families: query count, class count (COCO 133, ADE20K 150,
# Cityscapes 19), ResNet depth, Swin; all with small widths.
FAMILIES = {
    "200_queries_ade": ("official_tiny", {"MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 200,
                                          "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 150}),
    "cityscapes_r101": ("official_tiny", {"MODEL.SEM_SEG_HEAD.NUM_CLASSES": 19,
                                          "MODEL.RESNETS.DEPTH": 101}),
    "no_deep_supervision": ("official_tiny", {"MODEL.MASK_FORMER.DEEP_SUPERVISION": False,
                                              "MODEL.MASK_FORMER.DEC_LAYERS": 7}),
    "swin": ("official_tiny_swin", {"MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 200}),
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_state_dict_round_trips_through_pkl(tmp_path: Path, family: str) -> None:
    fixture, overrides = FAMILIES[family]
    cfg = _cfg(fixture, **overrides)
    source = _build(cfg, seed=1)
    state = source.state_dict()
    path = tmp_path / f"{family}.pkl"
    _save_pkl(state, path)
    target = _build(cfg, seed=2)
    assert any(not torch.equal(target.state_dict()[k], v) for k, v in state.items())
    _load(target, path)
    _assert_state_equal(target, state)
