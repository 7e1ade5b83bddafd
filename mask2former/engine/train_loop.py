"""Training loops with mixed precision on CUDA (float16 + GradScaler) and on CPU (bfloat16).

detectron2's :class:`AMPTrainer` needs CUDA. :class:`AutocastTrainer` is the same step as
:class:`SimpleTrainer` with the forward pass (model + loss sum) under
``torch.autocast(device_type, dtype)``; it is used for bfloat16, which needs no loss scaling.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from detectron2.engine import AMPTrainer, SimpleTrainer
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["AMP_TORCH_DTYPES", "AutocastTrainer", "build_train_loop"]

# Values of SOLVER.AMP.DTYPE.
AMP_TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class AutocastTrainer(SimpleTrainer):
    """:class:`SimpleTrainer` whose forward runs under ``torch.autocast(device_type, dtype)``.

    Parameters, gradients and the optimizer step stay in float32; backward runs outside autocast.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Any,
        optimizer: torch.optim.Optimizer,
        *,
        device_type: str,
        dtype: torch.dtype,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.device_type = device_type
        self.dtype = dtype

    def run_step(self) -> None:
        assert self.model.training, "[AutocastTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        if self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        loss_dict = {k: v.float() for k, v in loss_dict.items()}
        losses = sum(loss_dict.values())
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        losses.backward()
        self.after_backward()

        if self.async_write_metrics:
            self.concurrent_executor.submit(
                self._write_metrics, loss_dict, data_time, iter=self.iter
            )
        else:
            self._write_metrics(loss_dict, data_time)
        self.optimizer.step()


def build_train_loop(
    model: nn.Module,
    data_loader: Any,
    optimizer: torch.optim.Optimizer,
    *,
    amp_enabled: bool,
    amp_dtype: str,
    device: str,
) -> SimpleTrainer:
    """Pick the training loop for the precision settings (``SOLVER.AMP.{ENABLED,DTYPE}``).

    - AMP off: :class:`SimpleTrainer` (float32).
    - CUDA: detectron2 :class:`AMPTrainer` with a GradScaler and ``amp_dtype``.
    - CPU + bfloat16: :class:`AutocastTrainer`.
    - CPU + float16: a warning, then float32 (CPU float16 autocast is slow and unscaled).
    """
    if amp_dtype not in AMP_TORCH_DTYPES:
        raise ValueError(
            f"SOLVER.AMP.DTYPE={amp_dtype!r} must be one of {sorted(AMP_TORCH_DTYPES)}"
        )
    if not amp_enabled:
        return SimpleTrainer(model, data_loader, optimizer)
    dtype = AMP_TORCH_DTYPES[amp_dtype]
    device_type = torch.device(device).type
    if device_type == "cuda":
        return AMPTrainer(model, data_loader, optimizer, precision=dtype)
    if dtype == torch.bfloat16:
        return AutocastTrainer(model, data_loader, optimizer, device_type=device_type, dtype=dtype)
    logger.warning(
        "SOLVER.AMP.ENABLED with DTYPE 'float16' on device %r: float16 mixed precision needs CUDA; "
        "training in float32 (set SOLVER.AMP.DTYPE bfloat16 for CPU mixed precision).",
        device,
    )
    return SimpleTrainer(model, data_loader, optimizer)
