# Key mapping between our MaskFormer state dict (the official Mask2Former names) and the
# `transformers` Mask2FormerForUniversalSegmentation one (HF Swin or ResNet backbone). Written after
# reading transformers' `modeling_mask2former.py`, `modeling_swin.py` and `modeling_resnet.py`.
# Each rule pairs one of our key templates with one HF template, or with three for the fused
# q/k/v projections (ours: one [3C, C] matrix; HF: q_proj, k_proj and v_proj).
import functools
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["MappingError", "KeyRule", "key_rules", "to_hf_state_dict", "from_hf_state_dict"]

_PIXEL = "model.pixel_level_module."
_SWIN = _PIXEL + "encoder.swin."
_RESNET = _PIXEL + "encoder."
_DEC = _PIXEL + "decoder."
_TM = "model.transformer_module."
_OURS_PD = "sem_seg_head.pixel_decoder."
_OURS_TD = "sem_seg_head.predictor."


class MappingError(ValueError):
    """A state dict does not fit the key mapping (keys left over or missing)."""


@functools.cache
def _compile(template: str) -> "re.Pattern[str]":
    """``{i...}`` placeholders match digits, other ``{name}`` one dotted component."""
    pattern = ""
    for part in re.split(r"(\{\w+\})", template):
        if not part.startswith("{"):
            pattern += re.escape(part)
        elif part[1] == "i":
            pattern += rf"(?P<{part[1:-1]}>\d+)"
        else:
            pattern += rf"(?P<{part[1:-1]}>[A-Za-z0-9_]+)"
    return re.compile(pattern + "$")


@dataclass(frozen=True)
class KeyRule:
    """``ours`` <-> ``hf`` key templates; ``{name}`` placeholders match one dotted component
    (``{i}`` digits). With three ``hf`` templates, our tensor is their concatenation on dim 0."""

    ours: str
    hf: Tuple[str, ...]

    def match_ours(self, key: str) -> Optional[Dict[str, str]]:
        m = _compile(self.ours).match(key)
        return m.groupdict() if m else None

    def match_hf(self, key: str) -> Optional[Tuple[int, Dict[str, str]]]:
        for part, template in enumerate(self.hf):
            m = _compile(template).match(key)
            if m:
                return part, m.groupdict()
        return None


def _swin_rules() -> List[KeyRule]:
    block_ours = "backbone.layers.{i}.blocks.{ib}."
    block_hf = _SWIN + "encoder.layers.{i}.blocks.{ib}."
    rules = [
        KeyRule(
            "backbone.patch_embed.proj.{p}", (_SWIN + "embeddings.patch_embeddings.projection.{p}",)
        ),
        KeyRule("backbone.patch_embed.norm.{p}", (_SWIN + "embeddings.norm.{p}",)),
        KeyRule(block_ours + "norm1.{p}", (block_hf + "layernorm_before.{p}",)),
        KeyRule(block_ours + "norm2.{p}", (block_hf + "layernorm_after.{p}",)),
        KeyRule(
            block_ours + "attn.relative_position_bias_table",
            (block_hf + "attention.relative_position_bias.relative_position_bias_table",),
        ),
        KeyRule(
            block_ours + "attn.qkv.{p}",
            tuple(block_hf + f"attention.{n}_proj.{{p}}" for n in "qkv"),
        ),
        KeyRule(block_ours + "attn.proj.{p}", (block_hf + "attention.o_proj.{p}",)),
        KeyRule(block_ours + "mlp.{fc}.{p}", (block_hf + "mlp.{fc}.{p}",)),
        KeyRule(
            "backbone.layers.{i}.downsample.{m}.{p}",
            (_SWIN + "encoder.layers.{i}.downsample.{m}.{p}",),
        ),
    ]
    rules += [
        KeyRule(
            f"backbone.norm{i}.{{p}}", (_PIXEL + f"encoder.hidden_states_norms.stage{i + 1}.{{p}}",)
        )
        for i in range(4)
    ]
    return rules


def _resnet_rules() -> List[KeyRule]:
    stem = _RESNET + "embedder.embedder."
    rules = [
        KeyRule("backbone.stem.conv1.weight", (stem + "convolution.weight",)),
        KeyRule("backbone.stem.conv1.norm.{p}", (stem + "normalization.{p}",)),
    ]
    for stage in range(4):
        ours = f"backbone.res{stage + 2}.{{ib}}."
        hf = _RESNET + f"encoder.stages.{stage}.layers.{{ib}}."
        rules += [
            KeyRule(ours + "shortcut.weight", (hf + "shortcut.convolution.weight",)),
            KeyRule(ours + "shortcut.norm.{p}", (hf + "shortcut.normalization.{p}",)),
        ]
        for conv in range(3):
            rules += [
                KeyRule(
                    ours + f"conv{conv + 1}.weight", (hf + f"layer.{conv}.convolution.weight",)
                ),
                KeyRule(
                    ours + f"conv{conv + 1}.norm.{{p}}", (hf + f"layer.{conv}.normalization.{{p}}",)
                ),
            ]
    return rules


def _head_rules() -> List[KeyRule]:
    enc_ours = _OURS_PD + "transformer.encoder.layers.{i}."
    enc_hf = _DEC + "encoder.layers.{i}."
    sa, ca, ffn = (
        _OURS_TD + "transformer_self_attention_layers.{i}.",
        _OURS_TD + "transformer_cross_attention_layers.{i}.",
        _OURS_TD + "transformer_ffn_layers.{i}.",
    )
    dec_hf = _TM + "decoder.layers.{i}."
    return [
        # pixel decoder
        KeyRule(_OURS_PD + "input_proj.{i}.{i2}.{p}", (_DEC + "input_projections.{i}.{i2}.{p}",)),
        KeyRule(_OURS_PD + "transformer.level_embed", (_DEC + "level_embed",)),
        KeyRule(enc_ours + "self_attn.{m}.{p}", (enc_hf + "self_attn.{m}.{p}",)),
        KeyRule(enc_ours + "norm1.{p}", (enc_hf + "self_attn_layer_norm.{p}",)),
        KeyRule(enc_ours + "linear1.{p}", (enc_hf + "fc1.{p}",)),
        KeyRule(enc_ours + "linear2.{p}", (enc_hf + "fc2.{p}",)),
        KeyRule(enc_ours + "norm2.{p}", (enc_hf + "final_layer_norm.{p}",)),
        KeyRule(_OURS_PD + "mask_features.{p}", (_DEC + "mask_projection.{p}",)),
        KeyRule(_OURS_PD + "adapter_{i}.weight", (_DEC + "adapter_{i}.0.weight",)),
        KeyRule(_OURS_PD + "adapter_{i}.norm.{p}", (_DEC + "adapter_{i}.1.{p}",)),
        KeyRule(_OURS_PD + "layer_{i}.weight", (_DEC + "layer_{i}.0.weight",)),
        KeyRule(_OURS_PD + "layer_{i}.norm.{p}", (_DEC + "layer_{i}.1.{p}",)),
        # transformer decoder
        KeyRule(
            sa + "self_attn.in_proj_{p}",
            tuple(dec_hf + f"self_attn.{n}_proj.{{p}}" for n in "qkv"),
        ),
        KeyRule(sa + "self_attn.out_proj.{p}", (dec_hf + "self_attn.out_proj.{p}",)),
        KeyRule(sa + "norm.{p}", (dec_hf + "self_attn_layer_norm.{p}",)),
        KeyRule(ca + "multihead_attn.{m}", (dec_hf + "cross_attn.{m}",)),
        KeyRule(ca + "multihead_attn.out_proj.{p}", (dec_hf + "cross_attn.out_proj.{p}",)),
        KeyRule(ca + "norm.{p}", (dec_hf + "cross_attn_layer_norm.{p}",)),
        KeyRule(ffn + "linear1.{p}", (dec_hf + "fc1.{p}",)),
        KeyRule(ffn + "linear2.{p}", (dec_hf + "fc2.{p}",)),
        KeyRule(ffn + "norm.{p}", (dec_hf + "final_layer_norm.{p}",)),
        KeyRule(_OURS_TD + "decoder_norm.{p}", (_TM + "decoder.layernorm.{p}",)),
        KeyRule(_OURS_TD + "query_feat.weight", (_TM + "queries_features.weight",)),
        KeyRule(_OURS_TD + "query_embed.weight", (_TM + "queries_embedder.weight",)),
        KeyRule(_OURS_TD + "level_embed.weight", (_TM + "level_embed.weight",)),
        KeyRule(_OURS_TD + "input_proj.{i}.{p}", (_TM + "input_projections.{i}.{p}",)),
        KeyRule(_OURS_TD + "class_embed.{p}", ("class_predictor.{p}",)),
        KeyRule(
            _OURS_TD + "mask_embed.layers.{i}.{p}",
            (_TM + "decoder.mask_predictor.mask_embedder.{i}.0.{p}",),
        ),
        KeyRule("criterion.empty_weight", ("criterion.empty_weight",)),
    ]


def key_rules(backbone: str) -> List[KeyRule]:
    """The rules for a "swin" or "resnet" backbone."""
    if backbone not in ("swin", "resnet"):
        raise ValueError(f"backbone must be 'swin' or 'resnet', got {backbone!r}")
    return (_swin_rules() if backbone == "swin" else _resnet_rules()) + _head_rules()


def _fill(template: str, groups: Mapping[str, str]) -> str:
    return template.format(**groups)


def to_hf_state_dict(
    state_dict: Mapping[str, Tensor], backbone: str, *, ignore: Tuple[str, ...] = ()
) -> Dict[str, Tensor]:
    """Our keys -> HF keys. Keys ending in one of ``ignore`` (e.g. our Swin's
    ``relative_position_index`` buffer, which HF rebuilds) are dropped; any other key without a
    rule raises :class:`MappingError`."""
    rules = key_rules(backbone)
    out: Dict[str, Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        if key.endswith(ignore):
            continue
        for rule in rules:
            groups = rule.match_ours(key)
            if groups is None:
                continue
            parts = value.chunk(len(rule.hf), dim=0) if len(rule.hf) > 1 else (value,)
            for template, part in zip(rule.hf, parts):
                out[_fill(template, groups)] = part.clone()
            break
        else:
            unmapped.append(key)
    if unmapped:
        raise MappingError(f"{len(unmapped)} keys have no HF counterpart: {unmapped[:10]}")
    return out


def from_hf_state_dict(
    state_dict: Mapping[str, Tensor], backbone: str, *, ignore: Tuple[str, ...] = ()
) -> Dict[str, Tensor]:
    """HF keys -> our keys (the inverse of :func:`to_hf_state_dict`). HF keys ending in one of
    ``ignore`` are dropped; a fused projection with a part missing raises :class:`MappingError`."""
    rules = key_rules(backbone)
    fused: Dict[Tuple[int, str], Dict[int, Tensor]] = {}
    out: Dict[str, Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        if key.endswith(ignore):
            continue
        for index, rule in enumerate(rules):
            found = rule.match_hf(key)
            if found is None:
                continue
            part, groups = found
            ours = _fill(rule.ours, groups)
            if len(rule.hf) == 1:
                out[ours] = value.clone()
            else:
                fused.setdefault((index, ours), {})[part] = value
            break
        else:
            unmapped.append(key)
    if unmapped:
        raise MappingError(f"{len(unmapped)} HF keys have no counterpart here: {unmapped[:10]}")
    for (index, ours), parts in fused.items():
        if sorted(parts) != list(range(len(rules[index].hf))):
            raise MappingError(f"{ours}: got parts {sorted(parts)} of a fused q/k/v projection")
        out[ours] = torch.cat([parts[i] for i in sorted(parts)], dim=0)
    return out
