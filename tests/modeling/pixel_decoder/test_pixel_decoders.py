"""Pixel decoders: parity with the official MSDeformAttnPixelDecoder and invariants."""

from pathlib import Path
from typing import Dict, List

import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.layers import ShapeSpec
from torch import nn

from mask2former.config import add_maskformer2_config
from mask2former.modeling.pixel_decoder import (
    BasePixelDecoder,
    MSDeformAttnPixelDecoder,
    TransformerEncoderPixelDecoder,
    build_pixel_decoder,
)
from tests.helpers.official_fixtures import official_cfg

FEATURES = ("res2", "res3", "res4", "res5")
STRIDES = (4, 8, 16, 32)
PREFIX = "sem_seg_head.pixel_decoder."


def backbone_features(raw: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: raw[f"backbone.{k}"] for k in FEATURES}


def shapes_of(features: Dict[str, torch.Tensor]) -> Dict[str, ShapeSpec]:
    return {
        k: ShapeSpec(channels=features[k].shape[1], stride=s) for k, s in zip(FEATURES, STRIDES)
    }


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    assert actual.shape == expected.shape, name
    err = (actual - expected).abs().max().item() / expected.abs().max().item()
    assert err < 1e-5, f"{name}: max abs diff {err:.2e} of max |value|"


def tiny_cfg(name: str = "MSDeformAttnPixelDecoder") -> CfgNode:
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = name
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = list(FEATURES)
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = 16
    cfg.MODEL.SEM_SEG_HEAD.NORM = "GN"
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 1
    cfg.MODEL.MASK_FORMER.NHEADS = 2
    cfg.MODEL.MASK_FORMER.DIM_FEEDFORWARD = 32
    return cfg


def tiny_features(batch: int = 1, seed: int = 0) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    channels = (8, 16, 24, 32)
    return {
        k: torch.randn(batch, c, 64 // s, 96 // s, generator=g)
        for k, c, s in zip(FEATURES, channels, STRIDES)
    }


@pytest.mark.parametrize("fixture", ["official_tiny", "official_tiny_swin"])
def test_msdeformattn_matches_official(fixtures_dir: Path, fixture: str) -> None:
    folder = fixtures_dir / fixture
    raw = torch.load(folder / "raw_outputs.pth")
    features = backbone_features(raw)
    decoder = build_pixel_decoder(official_cfg(folder), shapes_of(features)).eval()
    assert isinstance(decoder, MSDeformAttnPixelDecoder)
    state = torch.load(folder / "state_dict.pth")
    state = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    decoder.load_state_dict(state, strict=True)

    with torch.no_grad():
        mask_features, encoder_features, multi_scale = decoder.forward_features(features)
    assert_close_rel(mask_features, raw["pixel_decoder.mask_features"], "mask_features")
    assert len(multi_scale) == 3
    for i, feat in enumerate(multi_scale):
        key = f"pixel_decoder.multi_scale_features.{i}"
        assert_close_rel(feat, raw[key], key)
    # The encoder features are the coarsest encoder output (official `out[0]`).
    torch.testing.assert_close(encoder_features, multi_scale[0])


def test_msdeformattn_reads_official_config_keys() -> None:
    cfg = tiny_cfg()
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 3
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS = 2
    cfg.MODEL.MASK_FORMER.DROPOUT = 0.25
    decoder = build_pixel_decoder(cfg, shapes_of(tiny_features()))
    layers = decoder.transformer.encoder.layers
    assert len(layers) == 3
    attn = layers[0].self_attn
    assert (attn.n_heads, attn.n_levels, attn.n_points) == (2, 3, 2)  # heads from MASK_FORMER
    assert layers[0].linear1.out_features == 1024  # the official (hard-coded) width by default
    assert layers[0].dropout1.p == 0.25
    assert decoder.transformer_in_features == ["res3", "res4", "res5"]
    assert decoder.num_fpn_levels == 1


def test_msdeformattn_encoder_ffn_width_is_a_config_key() -> None:
    cfg = tiny_cfg()
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD = 48
    cfg.MODEL.MASK_FORMER.DIM_FEEDFORWARD = 64  # the decoder's FFN width, not the encoder's
    decoder = build_pixel_decoder(cfg, shapes_of(tiny_features()))
    assert decoder.transformer.encoder.layers[0].linear1.out_features == 48


def test_msdeformattn_every_parameter_gets_gradient() -> None:
    decoder = build_pixel_decoder(tiny_cfg(), shapes_of(tiny_features()))
    # At init the sampling offsets and attention weights ignore the query (zero weights), so the
    # level embedding would get an exactly-zero gradient; perturb them as training would.
    with torch.no_grad():
        for layer in decoder.transformer.encoder.layers:
            layer.self_attn.sampling_offsets.weight.normal_(std=0.1)
            layer.self_attn.attention_weights.weight.normal_(std=0.1)
    mask_features, _, multi_scale = decoder.forward_features(tiny_features())
    (mask_features.sum() + sum(f.sum() for f in multi_scale)).backward()
    no_grad = [n for n, p in decoder.named_parameters() if p.grad is None or not p.grad.any()]
    assert not no_grad


@pytest.mark.parametrize("name", ["MSDeformAttnPixelDecoder", "BasePixelDecoder"])
def test_batch_equals_single_runs(name: str) -> None:
    torch.manual_seed(0)
    decoder = build_pixel_decoder(tiny_cfg(name), shapes_of(tiny_features())).eval()
    batch = tiny_features(batch=2)
    with torch.no_grad():
        mask_b, _, ms_b = decoder.forward_features(batch)
        for i in range(2):
            mask_i, _, ms_i = decoder.forward_features({k: v[i : i + 1] for k, v in batch.items()})
            torch.testing.assert_close(mask_b[i : i + 1], mask_i, rtol=1e-5, atol=1e-5)
            for a, b in zip(ms_b, ms_i):
                torch.testing.assert_close(a[i : i + 1], b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 2])
def test_msdeformattn_features_have_channels_last_strides(batch: int) -> None:
    """The encoder's levels are [B, C, H, W] views of its [B, S, C] output with the strides of a
    channels-last tensor of their own (batch stride H*W*C even for B = 1): the official
    ``transpose(1, 2).view(...)`` gives B = 1 a batch stride of C, on which F.interpolate takes a
    path 7x slower on CPU (tools/benchmarks/bench_inference.py); the values are the same."""
    decoder = build_pixel_decoder(tiny_cfg(), shapes_of(tiny_features())).eval()
    with torch.no_grad():
        _, _, multi_scale = decoder.forward_features(tiny_features(batch=batch))
    for level in multi_scale:
        _, c, h, w = level.shape
        assert level.stride()[1:] == (1, w * c, c), level.stride()
        assert level.stride()[0] >= h * w * c, level.stride()


def test_msdeformattn_padding_mask() -> None:
    decoder = build_pixel_decoder(tiny_cfg(), shapes_of(tiny_features())).eval()
    features = tiny_features()
    no_padding = torch.zeros(1, 64, 96, dtype=torch.bool)
    padded = no_padding.clone()
    padded[:, :, 64:] = True
    with torch.no_grad():
        reference = decoder.forward_features(features)[0]
        same = decoder.forward_features(features, padding_mask=no_padding)[0]
        masked = decoder.forward_features(features, padding_mask=padded)[0]
    torch.testing.assert_close(same, reference)
    assert torch.isfinite(masked).all()
    assert not torch.allclose(masked, reference)


def test_base_pixel_decoder_builds_and_runs() -> None:
    features = tiny_features(batch=2)
    decoder = build_pixel_decoder(tiny_cfg("BasePixelDecoder"), shapes_of(features))
    assert isinstance(decoder, BasePixelDecoder)
    mask_features, encoder_features, multi_scale = decoder.forward_features(features)
    assert mask_features.shape == (2, 16, 16, 24)
    assert encoder_features is None
    assert [tuple(f.shape) for f in multi_scale] == [(2, 32, 2, 3), (2, 32, 4, 6), (2, 32, 8, 12)]
    keys = set(decoder.state_dict())
    assert {"adapter_1.weight", "adapter_1.norm.weight", "layer_4.weight"} <= keys
    assert "adapter_4.weight" not in keys
    mask_features.sum().backward()
    assert all(p.grad is not None for p in decoder.parameters())


def test_transformer_encoder_pixel_decoder_builds_and_runs() -> None:
    features = tiny_features()
    decoder = build_pixel_decoder(tiny_cfg("TransformerEncoderPixelDecoder"), shapes_of(features))
    assert isinstance(decoder, TransformerEncoderPixelDecoder)
    assert decoder.layer_4.weight.shape[1] == 32  # reads the encoder output, not res5
    mask_features, encoder_features, multi_scale = decoder.forward_features(features)
    assert mask_features.shape == (1, 16, 16, 24)
    assert encoder_features.shape == (1, 32, 2, 3)
    assert len(multi_scale) == 3
    (mask_features.sum() + encoder_features.sum()).backward()
    no_grad = [n for n, p in decoder.named_parameters() if p.grad is None]
    assert not no_grad


def test_transformer_encoder_pixel_decoder_builds_every_conv_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: List[nn.Conv2d] = []
    conv_init = nn.Conv2d.__init__

    def recording_init(self: nn.Conv2d, *args, **kwargs) -> None:
        conv_init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(nn.Conv2d, "__init__", recording_init)
    decoder = build_pixel_decoder(
        tiny_cfg("TransformerEncoderPixelDecoder"), shapes_of(tiny_features())
    )
    kept = [m for m in decoder.modules() if isinstance(m, nn.Conv2d)]
    assert len(kept) == 9  # 3 adapters, 4 output convs, mask_features, the input projection
    assert len(built) == len(kept)  # none built and then replaced


def test_unknown_pixel_decoder_name_lists_registered() -> None:
    cfg = tiny_cfg("NoSuchDecoder")
    with pytest.raises(KeyError, match="NoSuchDecoder.*MSDeformAttnPixelDecoder"):
        build_pixel_decoder(cfg, shapes_of(tiny_features()))


def test_unknown_encoder_feature_is_reported() -> None:
    cfg = tiny_cfg()
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES = ["res4", "res6"]
    with pytest.raises(ValueError, match="res6"):
        build_pixel_decoder(cfg, shapes_of(tiny_features()))
