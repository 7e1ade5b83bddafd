"""Mixed-precision training (``SOLVER.AMP.{ENABLED,DTYPE}``) on detectron2's unmodified loops.

detectron2's ``DefaultTrainer`` trains with ``AMPTrainer`` when ``SOLVER.AMP.ENABLED`` (float16
autocast and a GradScaler; its ``run_step`` asserts CUDA) and with ``SimpleTrainer`` otherwise.
This project keeps both loops as they are and adds the one thing they lack, an autocast dtype on
any device, around the model's forward:

- CUDA, float16: ``AMPTrainer`` (GradScaler); the forward under ``autocast("cuda", float16)``;
- CUDA, bfloat16: ``AMPTrainer`` (its GradScaler is harmless); ``autocast("cuda", bfloat16)``;
- CPU, bfloat16: ``SimpleTrainer`` (bfloat16 needs no loss scaling); ``autocast("cpu", bfloat16)``;
- CPU, float16: ``SimpleTrainer`` in float32, with a warning (unscaled float16 underflows).

:class:`TrainingAutocast` enters ``torch.autocast`` in a forward pre-hook of the model and leaves
it in a forward hook registered with ``always_call=True`` (run even when the forward raises),
which also casts the returned losses to float32. Nested in ``AMPTrainer``'s own float16 autocast,
the inner one sets the dtype. Why hooks rather than a training loop of our own or a model change:
they use only public PyTorch API (``nn.Module.register_forward_pre_hook`` /
``register_forward_hook``, torch >= 2.0) and detectron2's documented choice between its two loops,
so a detectron2 upgrade changes nothing here; the model keeps its class, ``state_dict`` keys and
DDP wrapping, and any ``META_ARCHITECTURE`` (a user's too) trains in bfloat16 on a CPU.
Evaluation (the model in eval mode) stays float32, as with ``AMPTrainer``.
"""

from __future__ import annotations

from typing import Any, List, Optional

import torch
from detectron2.config import CfgNode
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..utils.amp import AMP_TORCH_DTYPES, autocast_dtype

__all__ = ["AMP_TORCH_DTYPES", "TrainingAutocast", "training_autocast", "uses_grad_scaler"]


class TrainingAutocast:
    """Runs a module's training-mode forward under ``torch.autocast(device_type, dtype)``.

    Attach it with :meth:`attach`; the module itself is not changed. Floating-point tensors
    returned by the forward (a loss dict or a loss tensor) are cast to float32, so the loss sum
    and ``backward`` start in float32, as parameters and gradients stay.
    """

    def __init__(self, device_type: str, dtype: torch.dtype) -> None:
        self.device_type = device_type
        self.dtype = dtype
        # One entry per forward in progress: the entered autocast, or None (eval mode).
        self.active: List[Optional[torch.autocast]] = []
        self.handles: List[RemovableHandle] = []

    def attach(self, module: nn.Module) -> TrainingAutocast:
        """Register the hooks on ``module`` (e.g. the model of a trainer); returns ``self``."""
        self.handles = [
            module.register_forward_pre_hook(self.enter),
            module.register_forward_hook(self.leave, always_call=True),
        ]
        return self

    def detach(self) -> None:
        """Remove the hooks: the module's forward runs in float32 again."""
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def enter(self, module: nn.Module, args: Any) -> None:
        context = None
        if module.training:
            context = torch.autocast(self.device_type, dtype=self.dtype)
            context.__enter__()
        self.active.append(context)

    def leave(self, module: nn.Module, args: Any, output: Any) -> Any:
        context = self.active.pop() if self.active else None
        if context is None:
            return None
        context.__exit__(None, None, None)
        if isinstance(output, dict):
            return {k: _to_float32(v) for k, v in output.items()}
        return _to_float32(output)


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    return value


def uses_grad_scaler(cfg: CfgNode) -> bool:
    """Whether detectron2's ``AMPTrainer`` (CUDA only, with a GradScaler) runs the training."""
    return cfg.SOLVER.AMP.ENABLED and torch.device(cfg.MODEL.DEVICE).type == "cuda"


def training_autocast(cfg: CfgNode) -> Optional[TrainingAutocast]:
    """The :class:`TrainingAutocast` of ``SOLVER.AMP.{ENABLED,DTYPE}`` on ``MODEL.DEVICE``.

    Returns None for float32 training: AMP off, or float16 requested on a device other than CUDA
    (logged as a warning: float16 without loss scaling underflows; bfloat16 is what CPUs run).
    """
    amp = cfg.SOLVER.AMP
    dtype = autocast_dtype(amp.ENABLED, amp.DTYPE, cfg.MODEL.DEVICE, "SOLVER.AMP")
    if dtype is None:
        return None
    device_type = torch.device(cfg.MODEL.DEVICE).type
    return TrainingAutocast(device_type, dtype)
