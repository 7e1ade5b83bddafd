"""Shared layers (mask2former/modeling/layers): official key names, residual semantics, and use
over a flattened clip memory (T*H*W positions) as a video decoder will."""

from pathlib import Path
from typing import Dict, List

import pytest
import torch
from torch import nn

from mask2former.modeling.layers import (
    MLP,
    CrossAttentionLayer,
    FFNLayer,
    PositionEmbeddingSine,
    SelfAttentionLayer,
    TransformerEncoderLayer,
    add_fpn_convs,
    add_residual,
    masked_attention_mask,
)
from mask2former.modeling.pixel_decoder.msdeformattn import MSDeformAttnTransformerEncoderLayer

PREDICTOR = "sem_seg_head.predictor."
ENCODER_LAYER = "sem_seg_head.pixel_decoder.transformer.encoder.layers.0."
WIDTH, HEADS, FFN_WIDTH, ENCODER_FFN_WIDTH = 64, 4, 128, 1024  # official_tiny


@pytest.fixture(scope="module")
def official_state(fixtures_dir: Path) -> Dict[str, torch.Tensor]:
    return torch.load(fixtures_dir / "official_tiny" / "state_dict.pth")


def _sub_state(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _assert_same_keys_and_loads(module: nn.Module, official: Dict[str, torch.Tensor]) -> None:
    """Same keys in the same order as the official module; loads strictly."""
    assert list(module.state_dict()) == list(official)
    module.load_state_dict(official, strict=True)


@pytest.mark.parametrize(
    "prefix, build",
    [
        ("transformer_self_attention_layers.0.", lambda: SelfAttentionLayer(WIDTH, HEADS)),
        ("transformer_cross_attention_layers.0.", lambda: CrossAttentionLayer(WIDTH, HEADS)),
        ("transformer_ffn_layers.0.", lambda: FFNLayer(WIDTH, FFN_WIDTH)),
        ("mask_embed.", lambda: MLP(WIDTH, WIDTH, WIDTH, 3)),
    ],
)
def test_decoder_layers_have_the_official_keys(official_state, prefix: str, build) -> None:
    _assert_same_keys_and_loads(build(), _sub_state(official_state, PREDICTOR + prefix))


def test_deformable_encoder_layer_has_the_official_keys(official_state) -> None:
    layer = MSDeformAttnTransformerEncoderLayer(
        WIDTH, ENCODER_FFN_WIDTH, n_levels=3, n_heads=HEADS, n_points=4
    )
    _assert_same_keys_and_loads(layer, _sub_state(official_state, ENCODER_LAYER))


def test_detr_encoder_layer_keys() -> None:
    # MaskFormer's TransformerEncoderLayer (the official order is self_attn, linear1, linear2,
    # norm1, norm2; checkpoints load by name).
    keys = set(TransformerEncoderLayer(8, 2, 16).state_dict())
    attn = {f"self_attn.{k}" for k in ("in_proj_weight", "in_proj_bias")}
    attn |= {f"self_attn.out_proj.{k}" for k in ("weight", "bias")}
    others = {
        f"{m}.{k}" for m in ("norm1", "linear1", "linear2", "norm2") for k in ("weight", "bias")
    }
    assert keys == attn | others


def test_add_fpn_convs_registers_official_names_top_down() -> None:
    parent = nn.Module()
    laterals, outputs = add_fpn_convs(parent, [8, 16], conv_dim=4, norm="BN")
    assert [n for n, _ in parent.named_children()] == [
        "adapter_1",
        "layer_1",
        "adapter_2",
        "layer_2",
    ]
    assert laterals == [parent.adapter_2, parent.adapter_1]  # coarse first
    assert outputs == [parent.layer_2, parent.layer_1]
    assert parent.adapter_2.weight.shape == (4, 16, 1, 1)
    assert parent.layer_1.weight.shape == (4, 4, 3, 3)


def test_add_residual_pre_and_post_norm() -> None:
    x = torch.randn(5, 2, 8)
    norm, drop = nn.LayerNorm(8), nn.Identity()

    def double(t: torch.Tensor) -> torch.Tensor:
        return 2 * t

    torch.testing.assert_close(add_residual(x, double, norm, drop, False), norm(3 * x))
    torch.testing.assert_close(add_residual(x, double, norm, drop, True), x + 2 * norm(x))


@pytest.mark.parametrize("normalize_before", [False, True])
def test_ffn_layer_is_a_residual_relu_mlp(normalize_before: bool) -> None:
    ffn = FFNLayer(8, 16, normalize_before=normalize_before).eval()
    x = torch.randn(3, 2, 8)

    def mlp(t: torch.Tensor) -> torch.Tensor:
        return ffn.linear2(torch.relu(ffn.linear1(t)))

    expected = x + mlp(ffn.norm(x)) if normalize_before else ffn.norm(x + mlp(x))
    torch.testing.assert_close(ffn(x), expected)


def _clip_inputs(seed: int = 0) -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(3, 2, 8, generator=g)  # [Q, B, C]
    memory = torch.randn(2 * 4 * 5, 2, 8, generator=g)  # [T*H*W, B, C], T=2, H=4, W=5
    logits = torch.randn(2, 3, 2, 4, 5, generator=g)  # [B, Q, T, H, W]
    return [queries, memory, logits]


def test_masked_cross_attention_over_a_clip_ignores_masked_positions() -> None:
    torch.manual_seed(0)
    layer = CrossAttentionLayer(8, nhead=2).eval()
    queries, memory, logits = _clip_inputs()
    logits[0, 1] = -5.0  # batch 0, query 1: empty mask, attends everywhere
    attn_mask = masked_attention_mask(logits, num_heads=2)
    assert attn_mask.shape == (2 * 2, 3, 2 * 4 * 5)  # [B*nheads, Q, T*H*W]
    assert not attn_mask[0, 1].any() and not attn_mask[1, 1].any()
    with torch.no_grad():
        out = layer(queries, memory, memory_mask=attn_mask)
        changed = memory.clone()
        # Change every position that batch 0's query 0 may not attend to.
        masked = attn_mask[0, 0]
        changed[masked, 0] += 10.0
        out_changed = layer(queries, changed, memory_mask=attn_mask)
    assert masked.any() and not masked.all()
    torch.testing.assert_close(out_changed[0, 0], out[0, 0])
    assert not torch.allclose(out_changed[1, 0], out[1, 0])  # query 1 attends everywhere


def test_self_attention_and_mlp_shapes_for_clip_queries() -> None:
    queries, _, _ = _clip_inputs()
    out = SelfAttentionLayer(8, 2, normalize_before=True)(
        queries, query_pos=torch.ones_like(queries)
    )
    assert out.shape == queries.shape
    assert MLP(8, 16, 4, 3)(out).shape == (3, 2, 4)


def test_position_embedding_has_one_definition_at_all_import_paths() -> None:
    from mask2former.modeling.transformer_decoder import PositionEmbeddingSine as decoder_path
    from mask2former.modeling.transformer_decoder.position_encoding import (
        PositionEmbeddingSine as official_path,
    )

    assert decoder_path is official_path is PositionEmbeddingSine


def test_masked_attention_equals_nn_multihead_attention_with_the_official_mask() -> None:
    """The sublayers' attention (one [B, 1, Q, S] mask for all heads) gives the outputs and
    gradients of ``nn.MultiheadAttention`` called as the official code calls it (the mask
    repeated per head, [B*nheads, Q, S])."""
    torch.manual_seed(0)
    layer = CrossAttentionLayer(8, nhead=2)
    queries, memory, logits = _clip_inputs()
    query_pos, pos = torch.randn_like(queries), torch.randn_like(memory)
    logits[1, 2] = -5.0  # an empty mask: attends everywhere
    shared = masked_attention_mask(logits)
    assert shared.shape == (2, 1, 3, 2 * 4 * 5)
    official_mask = masked_attention_mask(logits, num_heads=2)
    torch.testing.assert_close(shared.expand(-1, 2, -1, -1).flatten(0, 1), official_mask)

    def run(attend):
        layer.zero_grad()
        out = attend()
        out.pow(2).sum().backward()
        return out, [p.grad.clone() for p in layer.multihead_attn.parameters()]

    ours = run(lambda: layer.attend(queries, memory, query_pos, pos, shared, None))
    official = run(
        lambda: layer.multihead_attn(
            queries + query_pos, memory + pos, memory, attn_mask=official_mask,
            need_weights=False,
        )[0]
    )  # fmt: skip
    torch.testing.assert_close(ours[0], official[0], rtol=1e-5, atol=1e-6)
    for got, want in zip(ours[1], official[1]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
