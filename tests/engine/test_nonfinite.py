"""Numerical faults (issue 9, item 3, training): a non-finite loss term, gradient or parameter stops
training with an error naming the iteration and what was non-finite, after saving the last finite
state; the matcher is not what reports a diverged model; a GradScaler's overflow does not stop
training."""

import math
import re
from pathlib import Path
from typing import Callable, Dict, Optional

import pytest
import torch
from detectron2.engine import TrainerBase, hooks
from torch import Tensor, nn

from mask2former.engine import Checkpointer, Trainer
from mask2former.engine.numerics import NonFiniteCheck
from mask2former.modeling.matcher import HungarianMatcher
from tests.helpers.train_runs import finite_checkpoint, tiny_config


def test_absurd_learning_rate_stops_naming_iteration_and_terms(
    synthetic_datasets: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(
        tmp_path,
        "SOLVER.BASE_LR",
        "1e8",
        "SOLVER.MAX_ITER",
        "20",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
    )
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    with pytest.raises(FloatingPointError) as info:
        trainer.train()
    message = str(info.value)
    match = re.match(r"Training stopped at iteration (\d+) \(learning rate [^)]*1e\+08", message)
    assert match, message
    iteration = int(match.group(1))
    assert 0 < iteration < 20 and trainer.iter == iteration - 1  # the last iteration kept
    terms = re.findall(r"(loss_\w+)=(\S+?)[,;.]", message)
    assert terms and all(not math.isfinite(float(value)) for _, value in terms), message
    saved = tmp_path / f"model_{iteration - 1:07d}.pth"
    assert str(saved) in message and "--resume continues from it" in message
    assert (tmp_path / "last_checkpoint").read_text() == saved.name
    state = torch.load(saved, map_location="cpu", weights_only=True)
    assert state["iteration"] == iteration - 1
    assert finite_checkpoint(saved)


def test_matcher_assigns_non_finite_predictions_instead_of_failing() -> None:
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=64)
    logits = torch.randn(1, 4, 3)
    masks = torch.randn(1, 4, 8, 8)
    logits[0, 1] = float("nan")
    masks[0, 2] = float("inf")
    targets = [{"labels": torch.tensor([0, 1]), "masks": torch.rand(2, 8, 8) > 0.5}]
    ((queries, matched),) = matcher({"pred_logits": logits, "pred_masks": masks}, targets)
    assert sorted(matched.tolist()) == [0, 1] and len(set(queries.tolist())) == 2


class LossModel(nn.Module):
    """Training forward: two loss terms of one parameter vector; ``loss_b(weight, iteration)``."""

    def __init__(self, loss_b: Callable[[Tensor, int], Tensor]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((4,), 2.0))
        self.loss_b = loss_b

    def forward(self, x: Tensor, iteration: int) -> Dict[str, Tensor]:
        return {
            "loss_a": (self.weight * x).square().mean(),
            "loss_b": self.loss_b(self.weight, iteration),
        }


class Loop(TrainerBase):
    """detectron2's SimpleTrainer / AMPTrainer step on a CPU (optionally through a GradScaler)."""

    def __init__(self, model: nn.Module, lr: float, save_dir: Path, scaler=None) -> None:
        super().__init__()
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        self.checkpointer = Checkpointer(model, str(save_dir), trainer=self)
        self.scaler: Optional[torch.amp.GradScaler] = scaler
        self.register_hooks([NonFiniteCheck()])

    def run_step(self) -> None:
        losses = sum(self.model(torch.ones(4), self.iter).values())
        self.optimizer.zero_grad()
        if self.scaler is None:
            losses.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(losses).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()


def nan_gradient_at_2(w: Tensor, iteration: int) -> Tensor:
    """0 in value; at iteration 2 its gradient is NaN (sqrt'(0) * 0)."""
    return torch.sqrt(w - w).sum() if iteration == 2 else (w * 0).sum()


def test_non_finite_gradient_stops_before_the_step_and_saves_the_state(tmp_path: Path) -> None:
    model = LossModel(nan_gradient_at_2)
    loop = Loop(model, lr=0.1, save_dir=tmp_path)
    with pytest.raises(FloatingPointError, match=r"iteration 2 .*non-finite gradients of weight"):
        loop.train(0, 10)
    after_1 = torch.full((4,), 2.0 * 0.95**2)  # the step of iteration 2 was not taken
    assert torch.allclose(model.weight.detach(), after_1)
    state = torch.load(tmp_path / "model_0000001.pth", weights_only=True)
    assert state["iteration"] == 1 and torch.equal(state["model"]["weight"], model.weight.detach())


def test_failure_in_the_last_iteration_is_not_evaluated(tmp_path: Path) -> None:
    """detectron2 evaluates after training when iter + 1 >= max_iter, which a failure in the last
    iteration would satisfy; the check leaves iter at the last iteration kept."""
    evaluations = []
    loop = Loop(LossModel(nan_gradient_at_2), lr=0.1, save_dir=tmp_path)
    loop.register_hooks([hooks.EvalHook(0, lambda: evaluations.append(loop.iter) or {})])
    with pytest.raises(FloatingPointError, match="iteration 2"):
        loop.train(0, 3)
    assert loop.iter == 1 and evaluations == []


def test_parameter_overflow_in_a_step_is_not_saved(tmp_path: Path) -> None:
    model = LossModel(lambda w, iteration: 100 * w.sum())
    loop = Loop(model, lr=1e38, save_dir=tmp_path)
    with pytest.raises(FloatingPointError, match="iteration 0.*made parameters non-finite") as info:
        loop.train(0, 10)
    assert "not saved" in str(info.value) and "no checkpoint was written" in str(info.value)
    assert not list(tmp_path.glob("*.pth"))


def test_grad_scaler_overflow_is_skipped_and_training_goes_on(tmp_path: Path) -> None:
    """As AMPTrainer with float16: the scaled gradients overflow, the GradScaler skips those
    steps and lowers its scale; the check sees only the steps taken and does not stop training."""
    model = LossModel(lambda w, iteration: w.sum())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127, growth_interval=1000)
    loop = Loop(model, lr=0.01, save_dir=tmp_path, scaler=scaler)
    loop.train(0, 30)
    assert loop.iter == 30
    assert scaler.get_scale() < 2.0**127  # overflowing steps were skipped
    assert torch.isfinite(model.weight).all() and not torch.equal(
        model.weight.detach(), torch.full((4,), 2.0)
    )  # later steps were taken


def test_non_finite_loss_stops_even_with_a_grad_scaler(tmp_path: Path) -> None:
    model = LossModel(lambda w, iteration: torch.log(w - 2.0).sum())  # -inf at the start
    loop = Loop(model, lr=0.01, save_dir=tmp_path, scaler=torch.amp.GradScaler("cpu"))
    with pytest.raises(FloatingPointError, match=r"iteration 0 .*loss_b=-inf"):
        loop.train(0, 3)
    assert (tmp_path / "model_init.pth").exists()


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="float16 AMP with a GradScaler needs CUDA"
)
def test_cuda_float16_amp_trains_with_the_check(synthetic_datasets: Path, tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path, "MODEL.DEVICE", "cuda", "SOLVER.AMP.ENABLED", "True", "SOLVER.MAX_ITER", "3"
    )
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert trainer.iter == 3
