"""Optimizer construction for Mask2Former training.

The parameter grouping and the full-model gradient clipping follow the official Mask2Former
``train_net.py`` (Cheng et al., CVPR 2022), rewritten as small testable functions:

- every trainable parameter is placed in exactly one group (shared parameters only once);
- parameters of modules whose name contains ``"backbone"`` get ``BASE_LR * BACKBONE_MULTIPLIER``;
- parameters of normalization layers get ``WEIGHT_DECAY_NORM``;
- embeddings (``nn.Embedding`` weights, Swin's ``relative_position_bias_table`` and
  ``absolute_pos_embed``, ``level_embed`` and query embeddings) get ``WEIGHT_DECAY_EMBED``.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Dict, Iterable, List, Set, Tuple, Type

import torch
from detectron2.config import CfgNode
from detectron2.layers import FrozenBatchNorm2d, NaiveSyncBatchNorm
from detectron2.solver.build import maybe_add_gradient_clipping, reduce_param_groups
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "NORM_MODULE_TYPES",
    "EMBED_PARAM_NAMES",
    "get_param_groups",
    "build_optimizer",
    "add_full_model_gradient_clipping",
]

# Modules whose parameters are normalization scales/shifts (weight decay WEIGHT_DECAY_NORM).
NORM_MODULE_TYPES: Tuple[Type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    FrozenBatchNorm2d,
    NaiveSyncBatchNorm,
)
if hasattr(nn, "RMSNorm"):  # torch >= 2.4
    NORM_MODULE_TYPES = NORM_MODULE_TYPES + (nn.RMSNorm,)

# Parameter names (last component) that are embeddings (weight decay WEIGHT_DECAY_EMBED).
EMBED_PARAM_NAMES: Tuple[str, ...] = (
    "relative_position_bias_table",  # Swin window attention
    "absolute_pos_embed",  # Swin absolute position embedding
    "level_embed",  # pixel decoder / transformer decoder level embedding
    "query_embed",  # learnable query positional embedding
    "query_feat",  # learnable query features
)


def _is_embedding(module: nn.Module, param_name: str) -> bool:
    return isinstance(module, nn.Embedding) or param_name in EMBED_PARAM_NAMES


def get_param_groups(
    model: nn.Module,
    *,
    base_lr: float,
    weight_decay: float,
    weight_decay_norm: float,
    weight_decay_embed: float,
    backbone_multiplier: float,
) -> List[Dict[str, Any]]:
    """Split the trainable parameters of ``model`` into optimizer parameter groups.

    Returns:
        One dict per parameter, ``{"params": [p], "lr": float, "weight_decay": float}``, in
        ``model.named_modules()`` order. Frozen parameters (``requires_grad=False``) are left out;
        a parameter shared by several modules appears once (the first module owning it decides).
    """
    params: List[Dict[str, Any]] = []
    memo: Set[nn.Parameter] = set()
    for module_name, module in model.named_modules():
        for param_name, value in module.named_parameters(recurse=False):
            if not value.requires_grad or value in memo:
                continue
            memo.add(value)
            lr = base_lr
            if "backbone" in module_name:
                lr = base_lr * backbone_multiplier
            wd = weight_decay
            if isinstance(module, NORM_MODULE_TYPES):
                wd = weight_decay_norm
            elif _is_embedding(module, param_name):
                wd = weight_decay_embed
            params.append({"params": [value], "lr": lr, "weight_decay": wd})
    return params


def add_full_model_gradient_clipping(
    optimizer_type: Type[torch.optim.Optimizer], clip_norm: float
) -> Type[torch.optim.Optimizer]:
    """Return a subclass of ``optimizer_type`` whose ``step`` first clips the global gradient norm.

    The norm is taken over all parameters of all groups together (as the official
    ``FullModelGradientClippingOptimizer``), unlike detectron2's per-parameter clipping.
    """
    if clip_norm <= 0:
        raise ValueError(f"full-model gradient clipping needs CLIP_VALUE > 0, got {clip_norm}")

    class FullModelGradientClippingOptimizer(optimizer_type):  # type: ignore[misc, valid-type]
        def step(self, closure=None):  # noqa: ANN001, ANN202 (torch signature)
            all_params = itertools.chain(*[g["params"] for g in self.param_groups])
            torch.nn.utils.clip_grad_norm_(all_params, clip_norm)
            return super().step(closure=closure)

    FullModelGradientClippingOptimizer.__name__ = (
        "FullModelGradientClipping" + optimizer_type.__name__
    )
    return FullModelGradientClippingOptimizer


def _can_fuse(params: List[Dict[str, Any]]) -> bool:
    """torch's fused SGD/AdamW kernels: float parameters on CPU or CUDA (much faster on CPU than
    the default per-tensor loop)."""
    tensors = [p for g in params for p in g["params"]]
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)


def _trainable(params: Iterable[Dict[str, Any]]) -> int:
    return sum(p.numel() for g in params for p in g["params"])


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer named by ``cfg.SOLVER.OPTIMIZER`` ("SGD" or "ADAMW") for ``model``.

    Reads ``SOLVER.{BASE_LR, WEIGHT_DECAY, WEIGHT_DECAY_NORM, WEIGHT_DECAY_EMBED,
    BACKBONE_MULTIPLIER, MOMENTUM, OPTIMIZER, CLIP_GRADIENTS.*}``. ``CLIP_TYPE == "full_model"``
    clips the global norm over all parameters; ``"value"``/``"norm"`` use detectron2's
    per-parameter clipping.
    """
    solver = cfg.SOLVER
    params = get_param_groups(
        model,
        base_lr=solver.BASE_LR,
        weight_decay=solver.WEIGHT_DECAY,
        weight_decay_norm=solver.WEIGHT_DECAY_NORM,
        weight_decay_embed=solver.WEIGHT_DECAY_EMBED,
        backbone_multiplier=solver.BACKBONE_MULTIPLIER,
    )
    if not params:
        raise ValueError("build_optimizer: the model has no trainable parameters")

    optimizer_name = solver.OPTIMIZER.upper()
    optimizer_types: Dict[str, Type[torch.optim.Optimizer]] = {
        "SGD": torch.optim.SGD,
        "ADAMW": torch.optim.AdamW,
    }
    if optimizer_name not in optimizer_types:
        raise ValueError(
            f"SOLVER.OPTIMIZER={solver.OPTIMIZER!r} is not supported; use one of "
            f"{sorted(optimizer_types)}"
        )
    optimizer_type = optimizer_types[optimizer_name]
    # Parameters with equal hyper-parameters share a group: same optimization as the official
    # one-group-per-parameter layout, but the fused kernels then update many tensors at once.
    params = reduce_param_groups(params)

    clip = solver.CLIP_GRADIENTS
    full_model_clip = clip.ENABLED and clip.CLIP_TYPE == "full_model"
    if full_model_clip:
        optimizer_type = add_full_model_gradient_clipping(optimizer_type, clip.CLIP_VALUE)

    kwargs: Dict[str, Any] = {"lr": solver.BASE_LR, "fused": _can_fuse(params)}
    if optimizer_name == "SGD":
        kwargs["momentum"] = solver.MOMENTUM
    optimizer = optimizer_type(params, **kwargs)
    if not full_model_clip:
        # detectron2's per-parameter clipping ("value" / "norm"); a no-op when disabled.
        optimizer = maybe_add_gradient_clipping(cfg, optimizer)
    logger.info(
        "Built %s with %d parameter groups (%d trainable values, fused=%s)",
        type(optimizer).__name__,
        len(params),
        _trainable(params),
        kwargs["fused"],
    )
    return optimizer
