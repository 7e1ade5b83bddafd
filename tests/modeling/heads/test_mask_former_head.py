"""MaskFormerHead: builds from an official config, loads official weights in both layouts."""

from pathlib import Path
from typing import Dict

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_sem_seg_head
from torch import nn

from mask2former.modeling.heads import MaskFormerHead
from mask2former.modeling.pixel_decoder import build_pixel_decoder
from mask2former.modeling.transformer_decoder import build_transformer_decoder
from tests.helpers.official_fixtures import official_cfg

FEATURES = ("res2", "res3", "res4", "res5")
STRIDES = (4, 8, 16, 32)
FIXTURE = "official_tiny"


class Wrapper(nn.Module):
    """Holds the head under the official attribute name, so state-dict keys keep the prefix."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.sem_seg_head = head


@pytest.fixture(scope="module")
def official(fixtures_dir: Path) -> Dict:
    folder = fixtures_dir / FIXTURE
    raw = torch.load(folder / "raw_outputs.pth")
    features = {k: raw[f"backbone.{k}"] for k in FEATURES}
    shapes = {
        k: ShapeSpec(channels=features[k].shape[1], stride=s) for k, s in zip(FEATURES, STRIDES)
    }
    state = torch.load(folder / "state_dict.pth")
    head_state = {k: v for k, v in state.items() if k.startswith("sem_seg_head.")}
    return {
        "cfg": official_cfg(folder),
        "raw": raw,
        "features": features,
        "shapes": shapes,
        "state": head_state,
        "has_metadata": hasattr(state, "_metadata"),
    }


def check_outputs(head: nn.Module, official: Dict) -> None:
    raw = official["raw"]
    with torch.no_grad():
        out = head.eval()(official["features"])
    actual = {"pred_logits": out["pred_logits"], "pred_masks": out["pred_masks"]}
    for i, aux in enumerate(out["aux_outputs"]):
        actual.update({f"aux_outputs.{i}.{k}": v for k, v in aux.items()})
    assert len(actual) == 8
    for key, value in actual.items():
        err = (value - raw[key]).abs().max().item() / raw[key].abs().max().item()
        assert err < 1e-5, f"{key}: max abs diff {err:.2e} of max |value|"


def test_built_from_official_name_and_loads_plain_state_dict(official: Dict) -> None:
    head = build_sem_seg_head(official["cfg"], official["shapes"])
    assert isinstance(head, MaskFormerHead)
    assert not official["has_metadata"]  # the case the official head mis-loads
    Wrapper(head).load_state_dict(official["state"], strict=True)
    check_outputs(head, official)


def test_built_from_plain_modules(official: Dict) -> None:
    cfg = official["cfg"]
    head = MaskFormerHead(
        pixel_decoder=build_pixel_decoder(cfg, official["shapes"]),
        transformer_predictor=build_transformer_decoder(cfg, cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM),
        transformer_in_feature="multi_scale_pixel_decoder",
    )
    Wrapper(head).load_state_dict(official["state"], strict=True)
    check_outputs(head, official)
    head.transformer_in_feature = "res9"
    with pytest.raises(ValueError, match="res9"):
        head(official["features"])


def test_loads_old_layout_state_dict(official: Dict) -> None:
    # MaskFormer v1 layout: the pixel decoder's entries sit directly under the head.
    old = {
        k.replace("sem_seg_head.pixel_decoder.", "sem_seg_head."): v
        for k, v in official["state"].items()
    }
    assert "sem_seg_head.adapter_1.weight" in old
    head = build_sem_seg_head(official["cfg"], official["shapes"])
    Wrapper(head).load_state_dict(old, strict=True)
    check_outputs(head, official)


def test_loads_own_state_dict_with_metadata(official: Dict) -> None:
    source = Wrapper(build_sem_seg_head(official["cfg"], official["shapes"]))
    source.load_state_dict(official["state"], strict=True)
    state = source.state_dict()  # carries _metadata
    head = build_sem_seg_head(official["cfg"], official["shapes"])
    Wrapper(head).load_state_dict(state, strict=True)
    check_outputs(head, official)


def test_unknown_old_layout_key_is_still_unexpected(official: Dict) -> None:
    state = dict(official["state"])
    state["sem_seg_head.not_a_module.weight"] = torch.zeros(1)
    head = build_sem_seg_head(official["cfg"], official["shapes"])
    result = Wrapper(head).load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["sem_seg_head.not_a_module.weight"]
    assert not result.missing_keys


@pytest.mark.parametrize(
    "in_feature, channels",
    [("multi_scale_pixel_decoder", 64), ("transformer_encoder", 64), ("res5", 256)],
)
def test_predictor_in_channels_follow_transformer_in_feature(
    official: Dict, in_feature: str, channels: int
) -> None:
    cfg = official["cfg"].clone()
    cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE = in_feature
    cfg.MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ = True
    head = build_sem_seg_head(cfg, official["shapes"])
    assert head.predictor.input_proj[0].weight.shape[1] == channels


def test_pixel_embedding_in_channels(official: Dict) -> None:
    cfg = official["cfg"].clone()
    cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = 32
    cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE = "pixel_embedding"
    head = build_sem_seg_head(cfg, official["shapes"])
    assert head.predictor.input_proj[0].weight.shape[1] == 32


def test_unknown_transformer_in_feature_is_reported(official: Dict) -> None:
    cfg = official["cfg"].clone()
    cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE = "res9"
    with pytest.raises(ValueError, match="res9"):
        build_sem_seg_head(cfg, official["shapes"])
