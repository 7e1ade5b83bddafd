# Copyright (c) the mask2former authors.
"""Stop training at the first non-finite number, with a checkpoint of the last finite state.

:class:`NonFiniteCheck` is a detectron2 hook. In every iteration ``i``:

- ``after_backward`` (before the optimizer step): the loss terms the model returned and, without
  a GradScaler, every gradient must be finite. If one is not (on any process), the model and
  optimizer are still the state after iteration ``i - 1`` (checked below); it is saved as the
  checkpoint of iteration ``i - 1`` (``model_<i-1>.pth``, tagged ``last_checkpoint``, so
  ``--resume`` continues from it) and a ``FloatingPointError`` names the iteration, the
  non-finite loss terms (with their values) or gradients, and that checkpoint.
- ``after_step`` (before detectron2's periodic checkpointer): the updated parameters must be
  finite. If a step with finite gradients made them overflow, nothing of this state is saved and
  the error names the last checkpoint written before it.

With float16 AMP (detectron2's ``AMPTrainer``), non-finite gradients are the GradScaler's to
handle (it skips that step and lowers the scale; training goes on), so only loss terms and
parameters are checked. detectron2's own check (in ``SimpleTrainer``'s metric writing, on the
main process, after this one) stays as a second line.

"Last finite state": the weights, optimizer, LR schedule and iteration counter after the last
iteration whose loss terms, gradients and updated parameters were all finite.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

logger = logging.getLogger(__name__)

__all__ = ["NonFiniteCheck", "non_finite_gradients", "non_finite_parameters", "non_finite_terms"]

# How many names an error message lists before "and N more".
MAX_NAMES = 8


def non_finite_terms(losses: Dict[str, Tensor]) -> List[Tuple[str, float]]:
    """(name, value) of the loss terms with a NaN or infinite element."""
    if not losses:
        return []
    finite = torch.stack([torch.isfinite(v.detach()).all() for v in losses.values()])
    if bool(finite.all()):
        return []
    return [
        (name, float(v.detach().float().sum()))
        for (name, v), ok in zip(losses.items(), finite.tolist())
        if not ok
    ]


def _non_finite(named: List[Tuple[str, Tensor]]) -> List[str]:
    if not named:
        return []
    finite = torch.stack([torch.isfinite(t).all() for _, t in named])
    if bool(finite.all()):
        return []
    return [name for (name, _), ok in zip(named, finite.tolist()) if not ok]


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def non_finite_gradients(model: nn.Module) -> List[str]:
    """Names of the parameters whose gradient has a NaN or infinite element."""
    named = _unwrap(model).named_parameters()
    return _non_finite([(name, p.grad) for name, p in named if p.grad is not None])


def non_finite_parameters(model: nn.Module) -> List[str]:
    """Names of the parameters with a NaN or infinite element."""
    return _non_finite([(name, p.detach()) for name, p in _unwrap(model).named_parameters()])


def _listing(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


class NonFiniteCheck(HookBase):
    """Raise ``FloatingPointError`` at the first non-finite loss term, gradient or parameter, after
    saving the last finite state (see the module docstring). Register it before detectron2's
    ``PeriodicCheckpointer`` so that no non-finite state is saved."""

    def __init__(self, check_gradients: bool = True) -> None:
        """
        Args:
            check_gradients: False when a GradScaler handles non-finite gradients (float16 AMP).
        """
        self.check_gradients = check_gradients
        self.losses: Optional[Dict[str, Tensor]] = None
        self.handle: Optional[RemovableHandle] = None

    def record_losses(self, module: nn.Module, args: Any, output: Any) -> None:
        """Forward hook on the model: keep the loss terms of a training forward."""
        if not module.training:
            return
        if isinstance(output, Tensor):
            output = {"total_loss": output}
        if isinstance(output, dict):
            self.losses = {k: v.detach() for k, v in output.items() if isinstance(v, Tensor)}

    def before_train(self) -> None:
        self.handle = self.trainer.model.register_forward_hook(self.record_losses)

    def after_train(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def after_backward(self) -> None:
        losses, self.losses = self.losses or {}, None
        terms = non_finite_terms(losses)
        gradients = non_finite_gradients(self.trainer.model) if self.check_gradients else []
        if comm.get_world_size() > 1:
            reports = comm.all_gather((comm.get_rank(), terms, gradients))
        else:
            reports = [(0, terms, gradients)]
        bad = [(rank, t, g) for rank, t, g in reports if t or g]
        if bad:
            raise FloatingPointError(self.describe(bad) + " " + self.save_last_finite_state())

    def after_step(self) -> None:
        names = non_finite_parameters(self.trainer.model)
        if names:
            raise FloatingPointError(
                f"Training stopped at iteration {self.trainer.iter}: its optimizer step made "
                f"parameters non-finite ({_listing(names)}) although the loss terms and gradients "
                "were finite. This state is not saved; the last checkpoint is "
                f"{self.last_checkpoint()}. Lower SOLVER.BASE_LR or enable SOLVER.CLIP_GRADIENTS."
            )

    def describe(self, bad: List[Tuple[int, List[Tuple[str, float]], List[str]]]) -> str:
        parts = []
        for rank, terms, gradients in bad:
            where = f" on process {rank}" if comm.get_world_size() > 1 else ""
            if terms:
                values = ", ".join(f"{name}={value}" for name, value in terms[:MAX_NAMES])
                more = len(terms) - MAX_NAMES
                values += f" and {more} more" if more > 0 else ""
                parts.append(f"non-finite loss terms{where}: {values}")
            if gradients:
                parts.append(f"non-finite gradients{where} of {_listing(gradients)}")
        return f"Training stopped at iteration {self.trainer.iter}: " + "; ".join(parts) + "."

    def save_last_finite_state(self) -> str:
        """Save the state after the previous iteration (not yet changed by this one) and say
        where; or say why not, and which checkpoint is the last one."""
        trainer = self.trainer
        iteration = trainer.iter
        parameters = non_finite_parameters(trainer.model)
        state = [t for s in trainer.optimizer.state.values() for t in s.values()]
        optimizer_finite = all(
            bool(torch.isfinite(t).all()) for t in state if isinstance(t, Tensor)
        )
        if parameters or not optimizer_finite:
            reason = f"parameters {_listing(parameters)}" if parameters else "the optimizer state"
            return (
                f"The current state is not finite ({reason}) and is not saved; the last "
                f"checkpoint is {self.last_checkpoint()}."
            )
        name = f"model_{iteration - 1:07d}" if iteration > 0 else "model_init"
        trainer.iter = iteration - 1  # the state saved is the one after iteration - 1
        try:
            trainer.checkpointer.save(name)
        finally:
            trainer.iter = iteration
        comm.synchronize()
        return (
            f"The last finite state (after iteration {iteration - 1}) is saved in "
            f"{trainer.checkpointer.save_dir}/{name}.pth; --resume continues from it. Lower "
            "SOLVER.BASE_LR, enable SOLVER.CLIP_GRADIENTS or check this iteration's data."
        )

    def last_checkpoint(self) -> str:
        checkpointer = self.trainer.checkpointer
        if checkpointer.has_checkpoint():
            return checkpointer.get_checkpoint_file()
        return "none (no checkpoint was written)"
