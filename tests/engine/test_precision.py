"""Mixed precision: which autocast ``SOLVER.AMP`` selects, and bfloat16 training on a CPU with
detectron2's own ``SimpleTrainer`` and a :class:`TrainingAutocast` around the model."""

import copy
import logging
from typing import Dict, List

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.engine import SimpleTrainer
from detectron2.utils.events import EventStorage
from torch import nn

from mask2former.engine.precision import TrainingAutocast, training_autocast, uses_grad_scaler


class TinySegModel(nn.Module):
    """Conv + linear "model" with the detectron2 training interface (list of dicts -> loss dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.cls = nn.Conv2d(8, 4, 1)
        self.seen_dtypes: List[torch.dtype] = []

    def forward(self, batch: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        x = torch.stack([b["image"] for b in batch])  # [B, 3, H, W]
        y = torch.stack([b["sem_seg"] for b in batch])  # [B, H, W]
        feat = self.conv(x)
        self.seen_dtypes.append(feat.dtype)
        logits = self.cls(feat.relu())  # [B, 4, H, W]
        if not self.training:
            return {"logits": logits}
        return {"loss_ce": nn.functional.cross_entropy(logits, y), "loss_l2": logits.pow(2).mean()}


def make_batches(n: int) -> List[List[Dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    return [
        [
            {
                "image": torch.randn(3, 16, 16, generator=g),
                "sem_seg": torch.randint(0, 4, (16, 16), generator=g),
            }
            for _ in range(2)
        ]
        for _ in range(n)
    ]


def amp_cfg(enabled: bool, dtype: str, device: str = "cpu"):
    cfg = get_cfg()
    cfg.SOLVER.AMP.ENABLED = enabled
    cfg.SOLVER.AMP.DTYPE = dtype
    cfg.MODEL.DEVICE = device
    return cfg


def test_training_autocast_follows_solver_amp(caplog: pytest.LogCaptureFixture) -> None:
    assert training_autocast(amp_cfg(False, "bfloat16")) is None
    cpu_bf16 = training_autocast(amp_cfg(True, "bfloat16"))
    assert (cpu_bf16.device_type, cpu_bf16.dtype) == ("cpu", torch.bfloat16)
    assert not uses_grad_scaler(amp_cfg(True, "bfloat16"))
    # CUDA: detectron2's AMPTrainer (GradScaler) runs, with our autocast of the chosen dtype
    cuda_bf16 = training_autocast(amp_cfg(True, "bfloat16", "cuda:0"))
    assert (cuda_bf16.device_type, cuda_bf16.dtype) == ("cuda", torch.bfloat16)
    assert uses_grad_scaler(amp_cfg(True, "float16", "cuda"))
    assert not uses_grad_scaler(amp_cfg(False, "float16", "cuda"))
    with caplog.at_level(logging.WARNING):
        assert training_autocast(amp_cfg(True, "float16")) is None
    assert "float16" in caplog.text and "float32" in caplog.text
    with pytest.raises(ValueError, match="int8"):
        training_autocast(amp_cfg(True, "int8"))


def _train(model: nn.Module, autocast: bool, steps: int) -> List[float]:
    """``steps`` iterations of detectron2's SimpleTrainer; the total loss of each."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loop = SimpleTrainer(model, make_batches(steps), opt)
    if autocast:
        TrainingAutocast("cpu", torch.bfloat16).attach(model)
    losses = []
    with EventStorage(0) as storage:
        for it in range(steps):
            loop.iter = storage.iter = it
            loop.run_step()
            losses.append(storage.history("total_loss").latest())
    return losses


def test_bf16_training_matches_fp32_with_simple_trainer() -> None:
    torch.manual_seed(0)
    model_fp32 = TinySegModel()
    model_bf16 = copy.deepcopy(model_fp32)
    loss_fp32 = _train(model_fp32, autocast=False, steps=3)
    loss_bf16 = _train(model_bf16, autocast=True, steps=3)
    # the forward really ran in bfloat16, the parameters stayed float32
    assert set(model_fp32.seen_dtypes) == {torch.float32}
    assert set(model_bf16.seen_dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model_bf16.parameters())
    # training moved the weights and the loss decreased in both precisions
    assert loss_fp32[-1] < loss_fp32[0] and loss_bf16[-1] < loss_bf16[0]
    # bfloat16 has an 8-bit mantissa (relative rounding 2^-8 ~ 0.4%); allow 2% on the loss
    for a, b in zip(loss_fp32, loss_bf16):
        assert b == pytest.approx(a, rel=2e-2)
    for p32, p16 in zip(model_fp32.parameters(), model_bf16.parameters()):
        torch.testing.assert_close(p16, p32, rtol=0.05, atol=5e-3)


def test_autocast_scope_losses_eval_mode_and_detach() -> None:
    model = TinySegModel()
    keys_before = list(model.state_dict())
    autocast = TrainingAutocast("cpu", torch.bfloat16).attach(model)
    assert list(model.state_dict()) == keys_before
    batch = make_batches(1)[0]

    losses = model(batch)
    assert model.seen_dtypes[-1] == torch.bfloat16
    assert all(v.dtype == torch.float32 for v in losses.values())
    assert not torch.is_autocast_enabled("cpu")  # left after the forward

    model.eval()  # evaluation stays float32
    assert model(batch)["logits"].dtype == torch.float32
    assert model.seen_dtypes[-1] == torch.float32

    model.train()
    with pytest.raises(RuntimeError, match="stack expects"):
        model([{"image": torch.zeros(3, 4, 4), "sem_seg": torch.zeros(5, 5)}, *batch])
    assert not torch.is_autocast_enabled("cpu")  # left even though the forward raised
    assert autocast.active == []

    autocast.detach()
    model(batch)
    assert model.seen_dtypes[-1] == torch.float32
