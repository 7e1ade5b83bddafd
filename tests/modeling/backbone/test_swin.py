"""Tests of the Swin backbone (`D2SwinTransformer`) and its parity with the official one."""

import math
import pickle
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone
from torch import Tensor, nn

from mask2former.config import add_maskformer2_config
from mask2former.modeling.backbone.swin import (
    SHIFT_MASK_VALUE,
    D2SwinTransformer,
    SwinTransformerBlock,
    resize_relative_position_bias_table,
    shifted_window_mask,
)

ALL_FEATURES = ["res2", "res3", "res4", "res5"]


def tiny_swin(**overrides) -> D2SwinTransformer:
    """The tiny Swin of `tests/fixtures/official_tiny_swin/config_full.yaml`, from plain values."""
    kwargs = dict(
        pretrain_img_size=224,
        patch_size=4,
        embed_dim=16,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=7,
        drop_path_rate=0.3,
        out_features=ALL_FEATURES,
    )
    kwargs.update(overrides)
    return D2SwinTransformer(**kwargs)


def official_backbone_state(fixtures_dir: Path) -> Dict[str, Tensor]:
    state = torch.load(fixtures_dir / "official_tiny_swin" / "state_dict.pth")
    return {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}


def assert_matches_official(model: nn.Module, fixtures_dir: Path) -> None:
    folder = fixtures_dir / "official_tiny_swin"
    images = torch.load(folder / "input.pth")["images_normalized_padded"]
    reference = torch.load(folder / "raw_outputs.pth")
    with torch.no_grad():
        outputs = model.eval()(images)
    assert sorted(outputs) == ALL_FEATURES
    for name in ALL_FEATURES:
        ref = reference[f"backbone.{name}"]
        assert outputs[name].shape == ref.shape, name
        diff = (outputs[name] - ref).abs().max().item()
        assert diff <= 1e-4 * ref.abs().max().item(), (name, diff)


def test_parity_with_official_tiny_swin(fixtures_dir: Path) -> None:
    model = tiny_swin()
    official = official_backbone_state(fixtures_dir)
    assert list(model.state_dict()) == list(official)  # same names, same order
    model.load_state_dict(official, strict=True)
    assert_matches_official(model, fixtures_dir)


def test_build_from_config_matches_official(fixtures_dir: Path) -> None:
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    cfg.merge_from_file(str(fixtures_dir / "official_tiny_swin" / "config_full.yaml"))
    assert cfg.MODEL.BACKBONE.NAME == "D2SwinTransformer"
    # the way detectron2 calls registered backbones, and its own builder
    model = BACKBONE_REGISTRY.get("D2SwinTransformer")(cfg, ShapeSpec(channels=3))
    assert isinstance(build_backbone(cfg), D2SwinTransformer)
    model.load_state_dict(official_backbone_state(fixtures_dir), strict=True)
    assert_matches_official(model, fixtures_dir)
    assert model.size_divisibility == 32
    shapes = model.output_shape()
    assert [(shapes[n].channels, shapes[n].stride) for n in ALL_FEATURES] == [
        (16, 4),
        (32, 8),
        (64, 16),
        (128, 32),
    ]

    cfg.MODEL.SWIN.OUT_FEATURES = ["res3", "res5"]
    subset = BACKBONE_REGISTRY.get("D2SwinTransformer")(cfg, ShapeSpec(channels=3))
    assert sorted(subset.output_shape()) == ["res3", "res5"]
    assert sorted(subset(torch.zeros(1, 3, 64, 64))) == ["res3", "res5"]
    # all four output norms exist whatever OUT_FEATURES is (official checkpoint layout)
    assert set(subset.state_dict()) == set(model.state_dict())

    cfg.MODEL.PIXEL_MEAN = [0.0]
    cfg.MODEL.PIXEL_STD = [1.0]
    with pytest.raises(ValueError, match="3 input channels"):
        build_backbone(cfg)


@pytest.mark.parametrize(
    "window_size, size, expected",
    [
        (12, (97, 131), [(25, 33), (13, 17), (7, 9), (4, 5)]),
        (7, (33, 30), [(9, 8), (5, 4), (3, 2), (2, 1)]),
    ],
)
def test_any_input_size(window_size: int, size, expected: List) -> None:
    torch.manual_seed(0)
    model = tiny_swin(window_size=window_size).eval()
    assert model.layers[0].blocks[0].attn.relative_position_bias_table.shape == (
        (2 * window_size - 1) ** 2,
        1,
    )
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, *size))
    for i, name in enumerate(ALL_FEATURES):
        assert outputs[name].shape == (2, 16 * 2**i, *expected[i]), name
        assert torch.isfinite(outputs[name]).all()


def test_batched_equals_one_by_one() -> None:
    torch.manual_seed(0)
    model = tiny_swin().eval()
    images = torch.randn(3, 3, 40, 56)
    with torch.no_grad():
        batched = model(images)
        single = [model(images[i : i + 1]) for i in range(3)]
    for name in ALL_FEATURES:
        torch.testing.assert_close(batched[name], torch.cat([s[name] for s in single]))


def brute_force_window_attention(block: SwinTransformerBlock, x: Tensor) -> Tensor:
    """Swin (shifted) window attention written as one global attention with a group mask.

    `x: [B, H, W, C]`. The map is zero padded to multiples of the window (padded tokens attend and
    are attended to, as in the official code). With shift s, position p of the padded map belongs
    to window group (p - s) // ws if p >= s, else to the wrapped-around border group -1: the
    official roll + 3x3 region mask is equivalent to this (for s = 0, groups are p // ws).
    """
    attn = block.attn
    ws, s = block.window_size, block.shift_size
    b, h, w, c = x.shape
    hp, wp = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
    padded = torch.zeros(b, hp, wp, c)
    padded[:, :h, :w] = x
    ys, xs = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()  # Hp*Wp

    def group(p: Tensor) -> Tensor:
        return torch.where(p >= s, torch.div(p - s, ws, rounding_mode="floor"), -1)

    same = (group(ys)[:, None] == group(ys)[None]) & (group(xs)[:, None] == group(xs)[None])
    dy = ys[:, None] - ys[None] + ws - 1  # within a group |dy| < ws
    dx = xs[:, None] - xs[None] + ws - 1
    heads, d = attn.num_heads, c // attn.num_heads
    tokens = padded.reshape(b, hp * wp, c)
    q, k, v = attn.qkv(tokens).reshape(b, hp * wp, 3, heads, d).permute(2, 0, 3, 1, 4)
    logits = (q * d**-0.5) @ k.transpose(-1, -2)  # B, nH, L, L
    table = attn.relative_position_bias_table
    index = (dy * (2 * ws - 1) + dx).clamp(0, table.shape[0] - 1)  # out-of-group pairs: masked
    bias = table[index]  # L, L, nH
    logits = logits + bias.permute(2, 0, 1)
    logits = logits.masked_fill(~same, float("-inf"))
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, hp * wp, c)
    out = attn.proj(out).reshape(b, hp, wp, c)
    return out[:, :h, :w]


@pytest.mark.parametrize("shift", [0, 2])
@pytest.mark.parametrize("size", [(8, 12), (10, 13)])
def test_window_attention_matches_brute_force(shift: int, size) -> None:
    torch.manual_seed(0)
    ws = 4
    block = SwinTransformerBlock(dim=8, num_heads=2, window_size=ws, shift_size=shift).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()  # make the bias matter
        x = torch.randn(2, *size, 8)
        hp, wp = math.ceil(size[0] / ws) * ws, math.ceil(size[1] / ws) * ws
        mask = shifted_window_mask(hp, wp, ws, 2, x.device)
        ours = block.window_attention(x, mask)
        torch.testing.assert_close(ours, brute_force_window_attention(block, x))


def test_shifted_window_does_not_leak_across_regions() -> None:
    """Changing a token at the top-left corner only changes outputs in its own shifted window."""
    torch.manual_seed(0)
    ws, shift, size = 4, 2, 8
    block = SwinTransformerBlock(dim=8, num_heads=2, window_size=ws, shift_size=shift).eval()
    mask = shifted_window_mask(size, size, ws, shift, torch.device("cpu"))
    assert set(mask.unique().tolist()) == {0.0, SHIFT_MASK_VALUE}
    x = torch.randn(1, size, size, 8)
    changed = x.clone()
    changed[0, 0, 0] += 10.0
    with torch.no_grad():
        delta = (block.window_attention(changed, mask) - block.window_attention(x, mask)).abs()
    affected = delta.amax(-1)[0] > 1e-6
    expected = torch.zeros(size, size, dtype=torch.bool)
    expected[:shift, :shift] = True  # the wrapped corner region, not the far borders
    assert torch.equal(affected, expected)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    # no drop path here: a dropped branch rightly gets no gradient
    model = tiny_swin(ape=True, pretrain_img_size=64, drop_path_rate=0.0).train()
    outputs = model(torch.randn(2, 3, 72, 52))  # APE interpolated from 16x16 to 18x13
    sum(o.square().mean() for o in outputs.values()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_gradient_checkpointing_gives_same_outputs_and_grads() -> None:
    torch.manual_seed(0)
    plain = tiny_swin(drop_path_rate=0.0)
    ckpt = tiny_swin(drop_path_rate=0.0, use_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 40, 40)
    grads = []
    for model in (plain, ckpt):
        model.train()
        loss = sum(o.sum() for o in model(x).values())
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_drop_path_only_in_training() -> None:
    torch.manual_seed(0)
    model = tiny_swin(drop_path_rate=0.6)
    rates = [block.drop_path.drop_prob for layer in model.layers for block in layer.blocks[1:]]
    assert isinstance(model.layers[0].blocks[0].drop_path, nn.Identity)  # rate 0 for the first
    assert rates == pytest.approx(torch.linspace(0, 0.6, 8).tolist()[1::2])
    no_drop = tiny_swin(drop_path_rate=0.0)
    no_drop.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        no_drop.eval()
        torch.testing.assert_close(model(x)["res5"], no_drop(x)["res5"])
        model.train()
        no_drop.train()
        torch.manual_seed(1)
        first = model(x)["res5"]
        torch.manual_seed(2)
        second = model(x)["res5"]
        assert not torch.allclose(first, second)
        torch.testing.assert_close(no_drop(x)["res5"], no_drop(x)["res5"])


def test_bad_inputs_raise() -> None:
    model = tiny_swin().eval()
    with pytest.raises(ValueError, match="N, C, H, W"):
        model(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="res6"):
        tiny_swin(out_features=["res2", "res6"])


def write_imagenet_pkl(path: Path, backbone: nn.Module) -> Dict[str, np.ndarray]:
    """A file as `tools/convert-pretrained-swin-model-to-d2.py` writes from an ImageNet Swin."""
    weights = {k: v.numpy().copy() for k, v in backbone.state_dict().items()}
    # per-stage output norms do not exist in the classification model; its final norm and head do
    for i in range(4):
        weights.pop(f"norm{i}.weight")
        weights.pop(f"norm{i}.bias")
    weights["norm.weight"] = np.ones(128, dtype=np.float32)
    weights["norm.bias"] = np.zeros(128, dtype=np.float32)
    weights["head.weight"] = np.random.randn(1000, 128).astype(np.float32)
    weights["head.bias"] = np.zeros(1000, dtype=np.float32)
    for i in range(4):  # the original release stores the shift mask of shifted blocks
        weights[f"layers.{i}.blocks.1.attn_mask"] = np.zeros((4, 49, 49), dtype=np.float32)
    with open(path, "wb") as f:
        pickle.dump({"model": weights, "__author__": "third_party", "matching_heuristics": True}, f)
    return weights


class WrappedModel(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = nn.Conv2d(128, 4, 1)  # stands in for the heads


def test_load_imagenet_backbone_pkl(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = tiny_swin()
    with torch.no_grad():
        for param in source.parameters():  # no tensor left at its (often constant) init value
            param.add_(torch.randn_like(param))
    path = str(tmp_path / "swin_tiny_in1k.pkl")
    weights = write_imagenet_pkl(Path(path), source)
    torch.manual_seed(1)
    model = WrappedModel(tiny_swin())
    DetectionCheckpointer(model).load(path)

    loaded = model.backbone.state_dict()
    output_norms = {f"norm{i}.{p}" for i in range(4) for p in ("weight", "bias")}
    assert set(loaded) - set(weights) == output_norms  # absent from ImageNet weights
    for name, value in loaded.items():
        if name not in output_norms:
            assert torch.equal(value, torch.from_numpy(weights[name])), name
    for i in range(4):  # the output norms keep their initial value
        assert torch.equal(loaded[f"norm{i}.weight"], torch.ones(16 * 2**i))

    # what the checkpointer reports: nothing backbone-related missing or of the wrong shape
    checkpointer = DetectionCheckpointer(WrappedModel(tiny_swin()))
    with open(path, "rb") as f:
        checkpoint = pickle.load(f)
    incompatible = checkpointer._load_model(checkpoint)
    missing = {k for k in incompatible.missing_keys if k.startswith("backbone.")}
    assert missing == {f"backbone.{k}" for k in output_norms}
    assert not incompatible.incorrect_shapes
    assert set(incompatible.missing_keys) - missing == {"decoder.weight", "decoder.bias"}
    assert not [k for k in incompatible.unexpected_keys if k.startswith("backbone.")]


def test_resize_relative_position_bias_on_load() -> None:
    torch.manual_seed(0)
    window7 = tiny_swin(window_size=7)
    window12 = tiny_swin(window_size=12)
    state = window7.state_dict()
    result = window12.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    attn12 = window12.layers[2].blocks[1].attn
    attn7 = window7.layers[2].blocks[1].attn
    assert attn12.relative_position_bias_table.shape == (23 * 23, 4)
    assert attn12.relative_position_index.shape == (144, 144)
    assert int(attn12.relative_position_index.max()) == 23 * 23 - 1
    # the centre (zero offset) of the grid keeps its value; a constant table stays constant
    torch.testing.assert_close(
        attn12.relative_position_bias_table[11 * 23 + 11],
        attn7.relative_position_bias_table[6 * 13 + 6],
    )
    constant = torch.full((13 * 13, 3), 0.25)
    torch.testing.assert_close(
        resize_relative_position_bias_table(constant, 12), torch.full((23 * 23, 3), 0.25)
    )
    with torch.no_grad():
        assert torch.isfinite(window12.eval()(torch.randn(1, 3, 64, 64))["res5"]).all()


def test_swin_tiny_builds_and_runs_224() -> None:
    torch.manual_seed(0)
    model = D2SwinTransformer(
        embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], out_features=ALL_FEATURES
    ).eval()
    # Swin-T classification has 28,288,354 parameters; minus the head (769,000) and the final
    # norm (1,536), plus the four output norms (2,880)
    assert sum(p.numel() for p in model.parameters()) == 28_288_354 - 769_000 - 1_536 + 2_880
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(outputs[n].shape) for n in ALL_FEATURES] == [
        (1, 96, 56, 56),
        (1, 192, 28, 28),
        (1, 384, 14, 14),
        (1, 768, 7, 7),
    ]
