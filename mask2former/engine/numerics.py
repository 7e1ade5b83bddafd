# Copyright (c) the mask2former authors.
"""Stop training at the first non-finite number, with a checkpoint of the last finite state.

:class:`NonFiniteCheck` is a detectron2 hook that attaches three PyTorch hooks when training
starts (public PyTorch API; detectron2's ``DefaultTrainer`` runs its loop in an inner trainer that
does not call the outer hooks' ``after_backward``):

- a forward hook on the model: the loss terms of iteration ``i`` must be finite, on every process
  (the processes exchange their verdicts, so all stop together);
- an optimizer step pre-hook: every gradient must be finite. Under float16 AMP, detectron2's
  ``AMPTrainer`` steps through a GradScaler, which skips the step (and lowers the scale) when the
  scaled gradients overflow: the optimizer is then not called, training goes on, and the check
  sees only the unscaled gradients of steps actually taken;
- an optimizer step post-hook: the updated parameters must be finite.

At a non-finite loss term or gradient, the model, optimizer and LR schedule are still the state
after iteration ``i - 1`` (whose parameters passed the last check): it is saved as the checkpoint
of iteration ``i - 1`` (``model_<i-1>.pth``, tagged ``last_checkpoint``, so ``--resume`` continues
from it) and a ``FloatingPointError`` names the iteration, the non-finite loss terms with their
values (or the gradients) and that file. If a step with finite gradients makes the parameters
overflow, that state is not saved and the error names the last checkpoint written before it.

"Last finite state": the weights, optimizer, LR schedule and iteration counter after the last
iteration whose loss terms, gradients and updated parameters were all finite. When it stops,
the check sets the trainer's ``iter`` back to that iteration, so that detectron2's evaluation
after training (``EvalHook.after_train``, which runs when ``iter + 1 >= max_iter``) does not
evaluate after a failed last iteration as if training had completed. These checks run
before detectron2's own (in ``SimpleTrainer``'s metric writing), which stays as a second line.
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


def _terms_listing(terms: List[Tuple[str, float]]) -> str:
    return _listing([f"{name}={value}" for name, value in terms])


ADVICE = "Lower SOLVER.BASE_LR, enable SOLVER.CLIP_GRADIENTS or check this iteration's data."


class NonFiniteCheck(HookBase):
    """Raise ``FloatingPointError`` at the first non-finite loss term, gradient or parameter, after
    saving the last finite state (see the module docstring). Needs a trainer with ``model``,
    ``optimizer`` and ``checkpointer`` (detectron2's ``DefaultTrainer``)."""

    def __init__(self) -> None:
        self.handles: List[RemovableHandle] = []
        self.checked: Dict[str, int] = {}  # check -> last iteration it ran (nested step calls)

    def before_train(self) -> None:
        optimizer = self.trainer.optimizer
        self.handles = [
            self.trainer.model.register_forward_hook(self.check_losses),
            optimizer.register_step_pre_hook(self.check_gradients),
            optimizer.register_step_post_hook(self.check_parameters),
        ]

    def after_train(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def once(self, check: str) -> bool:
        """True the first time ``check`` runs in this iteration (an optimizer whose ``step``
        calls its parent's may run the step hooks twice)."""
        if self.checked.get(check) == self.trainer.iter:
            return False
        self.checked[check] = self.trainer.iter
        return True

    def check_losses(self, module: nn.Module, args: Any, output: Any) -> None:
        """Forward hook: stop if a loss term of a training forward is not finite anywhere."""
        if not module.training:
            return
        if isinstance(output, Tensor):
            output = {"total_loss": output}
        losses = {k: v for k, v in output.items() if isinstance(v, Tensor)}
        terms = non_finite_terms(losses)
        if comm.get_world_size() > 1:
            reports = [(rank, t) for rank, t in enumerate(comm.all_gather(terms)) if t]
        else:
            reports = [(0, terms)] if terms else []
        if not reports:
            return
        where = [
            (f" on process {rank}" if comm.get_world_size() > 1 else "") + ": "
            for rank, _ in reports
        ]
        found = "; ".join(w + _terms_listing(t) for w, (_, t) in zip(where, reports))
        self.stop(
            f"{self.stopped()}: non-finite loss terms{found}. " + self.save_last_finite_state()
        )

    def check_gradients(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Optimizer step pre-hook: stop if a gradient is not finite (the same on all processes:
        DDP has averaged them)."""
        if not self.once("gradients"):
            return
        names = non_finite_gradients(self.trainer.model)
        if names:
            self.stop(
                f"{self.stopped()}: non-finite gradients of {_listing(names)} (the loss terms "
                "were finite). " + self.save_last_finite_state()
            )

    def check_parameters(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Optimizer step post-hook: stop if the step made a parameter non-finite."""
        if not self.once("parameters"):
            return
        names = non_finite_parameters(self.trainer.model)
        if names:
            self.stop(
                f"{self.stopped()}: its optimizer step made parameters non-finite "
                f"({_listing(names)}) although the loss terms and gradients were finite. This "
                f"state is not saved; the last checkpoint is {self.last_checkpoint()}. {ADVICE}"
            )

    def stop(self, message: str) -> None:
        """Raise ``FloatingPointError(message)`` with the trainer's ``iter`` at the last iteration
        whose state is kept (see the module docstring)."""
        self.trainer.iter -= 1
        raise FloatingPointError(message)

    def stopped(self) -> str:
        lrs = sorted({group["lr"] for group in self.trainer.optimizer.param_groups})
        rates = ", ".join(f"{lr:g}" for lr in lrs)
        return f"Training stopped at iteration {self.trainer.iter} (learning rate {rates})"

    def save_last_finite_state(self) -> str:
        """Save the state after the previous iteration (not yet changed by this one) and say
        where; or say why not, and which checkpoint is the last one."""
        trainer = self.trainer
        iteration = trainer.iter
        parameters = non_finite_parameters(trainer.model)
        state = [t for s in trainer.optimizer.state.values() for t in s.values()]
        optimizer_finite = not _non_finite([("", t) for t in state if isinstance(t, Tensor)])
        if parameters or not optimizer_finite:
            reason = f"parameters {_listing(parameters)}" if parameters else "the optimizer state"
            return (
                f"The current state is not finite ({reason}) and is not saved; the last "
                f"checkpoint is {self.last_checkpoint()}. {ADVICE}"
            )
        name = f"model_{iteration - 1:07d}" if iteration > 0 else "model_init"
        trainer.iter = iteration - 1  # the saved state is the one after iteration - 1
        try:
            trainer.checkpointer.save(name, iteration=iteration - 1)  # as PeriodicCheckpointer
        finally:
            trainer.iter = iteration
        comm.synchronize()
        return (
            f"The last finite state (after iteration {iteration - 1}) is saved in "
            f"{trainer.checkpointer.save_dir}/{name}.pth; --resume continues from it. {ADVICE}"
        )

    def last_checkpoint(self) -> Optional[str]:
        checkpointer = self.trainer.checkpointer
        if checkpointer.has_checkpoint():
            return checkpointer.get_checkpoint_file()
        return "none (no checkpoint was written)"
