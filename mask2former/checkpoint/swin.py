"""Swin Transformer ImageNet checkpoints -> the names of ``D2SwinTransformer``.

Two publishers, two layouts (Swin: Liu et al., ICCV 2021, github.com/microsoft/Swin-Transformer;
timm: github.com/huggingface/pytorch-image-models):

* **Swin authors** (``swin_tiny_patch4_window7_224.pth`` ...): ``{"model": state_dict}`` with the
  names our backbone uses (``layers.0.blocks.0.attn.qkv.weight``); a stage's patch merging closes
  it (``layers.{i}.downsample``, i = 0..n-2); each window attention stores its
  ``relative_position_index`` and each shifted block the ``attn_mask`` of the classification input.
* **timm** (>= 0.9: ``model.safetensors`` or ``pytorch_model.bin`` of
  ``swin_tiny_patch4_window7_224`` ...): a plain state dict in which the patch merging opens the
  next stage (``layers.{i+1}.downsample``), the classifier is ``head.fc`` and the index and mask
  buffers are absent.

The converted dict holds exactly the backbone's parameters and buffers:

* patch merging renamed to the Swin authors' place, ``relative_position_index`` added where absent;
* ``attn_mask`` dropped (``D2SwinTransformer`` builds the mask for each input size);
* the ImageNet classifier (final ``norm``, ``head``) dropped, as the official Mask2Former recipe
  drops it (its loader reports them unused);
* the per-stage output norms ``norm0`` ... ``norm{n-1}`` that the detection backbone adds are
  written at LayerNorm's initial value (weight 1, bias 0): the value the official recipe trains
  them from (its loader leaves them at their initialisation), so the file loads with no missing
  key. They are named with the ``backbone.`` prefix of a detectron2 model
  (``backbone.norm1.weight``): detectron2's matching heuristics would otherwise match
  ``norm1.weight`` to every ``*.norm1.weight`` of the model (the pixel decoder's encoder layers
  have them too) and refuse the file as ambiguous when the shapes agree (Swin-B's 256-channel
  stage 1). The other names are the Swin authors', unprefixed, as the official converter writes.
"""

import logging
import math
import re
from typing import Dict, Mapping, Tuple

import torch
from torch import Tensor

from ..modeling.backbone.swin import relative_position_index
from .io import ConversionError

__all__ = ["SWIN_LAYOUTS", "convert_swin_state_dict", "detect_swin_layout"]

logger = logging.getLogger(__name__)

SWIN_LAYOUTS = ("swin", "timm")
_LAYER = re.compile(r"^layers\.(\d+)\.")
_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.")
_CLASSIFIER = re.compile(r"^(norm|head)\.")
_TABLE = ".attn.relative_position_bias_table"
# The name of the backbone in detectron2 models, given to the added output norms (see above).
OUTPUT_NORM_PREFIX = "backbone."


def _stage_count(state: Mapping[str, Tensor]) -> int:
    stages = {int(m.group(1)) for k in state if (m := _LAYER.match(k))}
    if not stages or stages != set(range(max(stages) + 1)):
        raise ConversionError(
            f"not a Swin Transformer state dict: stages {sorted(stages)} under 'layers.<i>.' "
            f"(first keys: {list(state)[:5]})"
        )
    return max(stages) + 1


def detect_swin_layout(state: Mapping[str, Tensor]) -> str:
    """``"swin"`` (patch merging at the end of stages 0..n-2) or ``"timm"`` (start of 1..n-1)."""
    num_stages = _stage_count(state)
    merging = {int(m.group(1)) for k in state if (m := _DOWNSAMPLE.match(k))}
    if merging == set(range(num_stages - 1)) and "head.fc.weight" not in state:
        return "swin"
    if merging == set(range(1, num_stages)):
        return "timm"
    raise ConversionError(
        f"cannot tell the Swin layout: patch merging in stages {sorted(merging)} of {num_stages} "
        "(the Swin authors' checkpoints have it in 0..n-2, timm's in 1..n-1)"
    )


def _window_size(table: Tensor, key: str) -> int:
    side = math.isqrt(table.shape[0])
    if side * side != table.shape[0] or side % 2 == 0:
        raise ConversionError(f"{key} of shape {tuple(table.shape)} is not a (2w-1)^2 table")
    return (side + 1) // 2


def convert_swin_state_dict(state: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], str]:
    """Returns (``D2SwinTransformer`` state dict, detected layout) for a Swin ImageNet state dict.

    Args:
        state: ``{name: tensor}`` as published by the Swin authors or timm (see the module doc).
    """
    layout = detect_swin_layout(state)
    num_stages = _stage_count(state)
    out: Dict[str, Tensor] = {}
    dropped = []
    for key, value in state.items():
        if key.endswith(".attn_mask") or _CLASSIFIER.match(key):
            dropped.append(key)
            continue
        if layout == "timm" and (m := _DOWNSAMPLE.match(key)):
            key = f"layers.{int(m.group(1)) - 1}.downsample." + key[m.end() :]
        out[key] = value
    for key in [k for k in out if k.endswith(_TABLE)]:
        index_key = key[: -len("relative_position_bias_table")] + "relative_position_index"
        if index_key not in out:
            out[index_key] = relative_position_index(_window_size(out[key], key))
    for i in range(num_stages):
        norm1 = f"layers.{i}.blocks.0.norm1.weight"
        if norm1 not in out:
            raise ConversionError(f"stage {i} has no '{norm1}': not a Swin Transformer state dict")
        dim = out[norm1].shape[0]
        if f"norm{i}.weight" not in out:  # else a detection checkpoint that has them
            out[f"{OUTPUT_NORM_PREFIX}norm{i}.weight"] = torch.ones(dim, dtype=out[norm1].dtype)
            out[f"{OUTPUT_NORM_PREFIX}norm{i}.bias"] = torch.zeros(dim, dtype=out[norm1].dtype)
    logger.info(
        "Swin layout %r, %d stages: %d tensors kept or added, %d dropped (%s)",
        layout,
        num_stages,
        len(out),
        len(dropped),
        ", ".join(sorted({re.sub(r"\d+", "*", k) for k in dropped})) or "none",
    )
    return out, layout
