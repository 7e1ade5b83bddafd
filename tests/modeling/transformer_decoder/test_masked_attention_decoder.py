"""Masked-attention transformer decoder: parity with the official one and invariants."""

import math
from pathlib import Path
from typing import List, Tuple

import pytest
import torch
from detectron2.config import get_cfg

from mask2former.config import add_maskformer2_config
from mask2former.modeling.transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    PositionEmbeddingSine,
    build_transformer_decoder,
)
from tests.helpers.official_fixtures import official_cfg

PREFIX = "sem_seg_head.predictor."


def tiny_decoder(**overrides) -> MultiScaleMaskedTransformerDecoder:
    args = dict(
        in_channels=16,
        num_classes=5,
        hidden_dim=16,
        num_queries=6,
        nheads=2,
        dim_feedforward=32,
        dec_layers=4,
        pre_norm=False,
        mask_dim=8,
        enforce_input_project=False,
    )
    args.update(overrides)
    return MultiScaleMaskedTransformerDecoder(**args)


def tiny_inputs(batch: int = 1, channels: int = 16, seed: int = 0) -> Tuple[List, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(batch, channels, h, w, generator=g) for h, w in ((2, 3), (4, 6), (8, 12))]
    return x, torch.randn(batch, 8, 16, 24, generator=g)


@pytest.mark.parametrize("fixture", ["official_tiny", "official_tiny_swin"])
def test_matches_official(fixtures_dir: Path, fixture: str) -> None:
    folder = fixtures_dir / fixture
    cfg = official_cfg(folder)
    decoder = build_transformer_decoder(cfg, cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM).eval()
    assert decoder.num_layers == cfg.MODEL.MASK_FORMER.DEC_LAYERS - 1
    state = torch.load(folder / "state_dict.pth")
    state = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    decoder.load_state_dict(state, strict=True)

    raw = torch.load(folder / "raw_outputs.pth")
    x = [raw[f"pixel_decoder.multi_scale_features.{i}"] for i in range(3)]
    with torch.no_grad():
        out = decoder(x, raw["pixel_decoder.mask_features"])
    assert len(out["aux_outputs"]) == 3
    expected = {"pred_logits": out["pred_logits"], "pred_masks": out["pred_masks"]}
    for i, aux in enumerate(out["aux_outputs"]):
        expected.update({f"aux_outputs.{i}.{k}": v for k, v in aux.items()})
    for key, actual in expected.items():
        ref = raw[key]
        assert actual.shape == ref.shape, key
        err = (actual - ref).abs().max().item() / ref.abs().max().item()
        assert err < 1e-5, f"{key}: max abs diff {err:.2e} of max |value|"


def test_output_structure_and_gradients() -> None:
    decoder = tiny_decoder()
    x, mask_features = tiny_inputs(batch=2)
    out = decoder(x, mask_features)
    assert out["pred_logits"].shape == (2, 6, 6)
    assert out["pred_masks"].shape == (2, 6, 16, 24)
    assert len(out["aux_outputs"]) == 4  # the learned-query prediction + layers 0..2
    loss = out["pred_logits"].sum() + out["pred_masks"].sum()
    loss = loss + sum(a["pred_logits"].sum() + a["pred_masks"].sum() for a in out["aux_outputs"])
    loss.backward()
    no_grad = [n for n, p in decoder.named_parameters() if p.grad is None or not p.grad.any()]
    assert not no_grad


def test_batch_equals_single_runs() -> None:
    torch.manual_seed(0)
    decoder = tiny_decoder().eval()
    x, mask_features = tiny_inputs(batch=2)
    with torch.no_grad():
        batched = decoder(x, mask_features)
        for i in range(2):
            single = decoder([f[i : i + 1] for f in x], mask_features[i : i + 1])
            for key in ("pred_logits", "pred_masks"):
                torch.testing.assert_close(batched[key][i : i + 1], single[key])
            for a, b in zip(batched["aux_outputs"], single["aux_outputs"]):
                torch.testing.assert_close(a["pred_masks"][i : i + 1], b["pred_masks"])


def test_attention_mask_thresholds_and_frees_empty_queries() -> None:
    decoder = tiny_decoder()
    logits = torch.full((1, 3, 4, 4), -5.0)
    logits[0, 0, :2] = 5.0  # query 0: top half foreground
    logits[0, 2] = 5.0  # query 2: everywhere foreground; query 1 is empty everywhere
    attn_mask = decoder.attention_mask(logits, (2, 2))
    assert attn_mask.shape == (1, 1, 3, 4)  # [B, 1, Q, h*w]: one mask for all heads
    assert attn_mask.dtype == torch.bool
    assert attn_mask[0, 0, 0].tolist() == [False, False, True, True]
    assert not attn_mask[0, 0, 1].any()  # empty mask: attend everywhere
    assert not attn_mask[0, 0, 2].any()


def test_empty_masks_do_not_give_nan() -> None:
    decoder = tiny_decoder()
    with torch.no_grad():  # every mask logit very negative: every query's mask is empty
        decoder.mask_embed.layers[2].weight.zero_()
        decoder.mask_embed.layers[2].bias.fill_(-10.0)
    x, mask_features = tiny_inputs()
    out = decoder(x, mask_features.abs() + 1.0)
    assert (out["pred_masks"] < 0).all()
    assert torch.isfinite(out["pred_logits"]).all()
    out["pred_logits"].sum().backward()
    assert torch.isfinite(decoder.query_feat.weight.grad).all()


def test_pre_norm_and_input_projection_run() -> None:
    decoder = tiny_decoder(pre_norm=True, in_channels=12, dec_layers=2)
    assert decoder.transformer_cross_attention_layers[0].normalize_before
    x, mask_features = tiny_inputs(channels=12)
    out = decoder(x, mask_features)
    assert out["pred_masks"].shape == (1, 6, 16, 24)
    out["pred_masks"].sum().backward()
    assert decoder.input_proj[0].weight.grad is not None
    assert decoder.transformer_ffn_layers[1].norm.weight.grad is not None


def test_wrong_number_of_levels_is_reported() -> None:
    decoder = tiny_decoder()
    x, mask_features = tiny_inputs()
    with pytest.raises(ValueError, match="expects 3 feature levels, got 2"):
        decoder(x[:2], mask_features)


def test_old_static_query_key_is_renamed() -> None:
    decoder = tiny_decoder()
    state = decoder.state_dict()
    new_query = torch.randn_like(state["query_feat.weight"])
    state["static_query.weight"] = new_query
    del state["query_feat.weight"]
    decoder.load_state_dict(state, strict=True)
    torch.testing.assert_close(decoder.query_feat.weight.data, new_query)


def test_unknown_decoder_name_lists_registered() -> None:
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME = "NoSuchDecoder"
    with pytest.raises(KeyError, match="NoSuchDecoder.*MultiScaleMaskedTransformerDecoder"):
        build_transformer_decoder(cfg, 256)


def test_builder_keeps_the_official_mask_classification_argument() -> None:
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    decoder = build_transformer_decoder(cfg, 256, mask_classification=True)
    assert isinstance(decoder, MultiScaleMaskedTransformerDecoder)
    with pytest.raises(ValueError, match="mask_classification=False"):
        build_transformer_decoder(cfg, 256, mask_classification=False)


def test_position_embedding_sine() -> None:
    pe = PositionEmbeddingSine(4, normalize=True)
    pos = pe(torch.zeros(2, 3, 2, 5))
    assert pos.shape == (2, 8, 2, 5)
    # Channel 0 is sin(y_norm) with y_norm = (row + 1) / H * 2pi; channel 7 is cos(x_norm / 100).
    torch.testing.assert_close(pos[0, 0, :, 0], torch.sin(torch.tensor([0.5, 1.0]) * 2 * math.pi))
    x_norm = torch.arange(1, 6) / 5 * 2 * math.pi
    torch.testing.assert_close(pos[1, 7, 0], torch.cos(x_norm / 100), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="normalize"):
        PositionEmbeddingSine(4, scale=1.0)
