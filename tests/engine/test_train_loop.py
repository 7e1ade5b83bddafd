"""Precision selection and the bfloat16 autocast training step on CPU."""

import copy
import logging
from typing import Dict, List

import pytest
import torch
from detectron2.engine import SimpleTrainer
from detectron2.utils.events import EventStorage
from torch import nn

from mask2former.engine.train_loop import AutocastTrainer, build_train_loop


class TinySegModel(nn.Module):
    """Conv + linear "model" with the detectron2 training interface (list of dicts -> loss dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.cls = nn.Conv2d(8, 4, 1)
        self.seen_dtype = None

    def forward(self, batch: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        x = torch.stack([b["image"] for b in batch])  # [B, 3, H, W]
        y = torch.stack([b["sem_seg"] for b in batch])  # [B, H, W]
        feat = self.conv(x)
        self.seen_dtype = feat.dtype
        logits = self.cls(feat.relu())  # [B, 4, H, W]
        ce = nn.functional.cross_entropy(logits.float(), y)
        return {"loss_ce": ce, "loss_l2": 0.1 * logits.float().pow(2).mean()}


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


def test_build_train_loop_selects_precision(caplog: pytest.LogCaptureFixture) -> None:
    model = TinySegModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = make_batches(1)
    kw = dict(device="cpu")
    loop = build_train_loop(model, data, opt, amp_enabled=False, amp_dtype="float16", **kw)
    assert type(loop) is SimpleTrainer
    loop = build_train_loop(model, data, opt, amp_enabled=True, amp_dtype="bfloat16", **kw)
    assert isinstance(loop, AutocastTrainer) and loop.dtype == torch.bfloat16
    with caplog.at_level(logging.WARNING):
        loop = build_train_loop(model, data, opt, amp_enabled=True, amp_dtype="float16", **kw)
    assert type(loop) is SimpleTrainer
    assert "float16" in caplog.text and "float32" in caplog.text
    with pytest.raises(ValueError, match="int8"):
        build_train_loop(model, data, opt, amp_enabled=True, amp_dtype="int8", **kw)


def _run(model: nn.Module, amp: bool, steps: int) -> List[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loop = build_train_loop(
        model, make_batches(steps), opt, amp_enabled=amp, amp_dtype="bfloat16", device="cpu"
    )
    losses = []
    with EventStorage(0) as storage:
        for it in range(steps):
            loop.iter = it
            storage.iter = it
            loop.run_step()
            losses.append(storage.history("total_loss").latest())
    return losses


def test_bf16_autocast_step_matches_fp32() -> None:
    torch.manual_seed(0)
    model_fp32 = TinySegModel()
    model_bf16 = copy.deepcopy(model_fp32)
    loss_fp32 = _run(model_fp32, amp=False, steps=3)
    loss_bf16 = _run(model_bf16, amp=True, steps=3)
    # the forward really ran in bfloat16, the parameters stayed float32
    assert model_fp32.seen_dtype == torch.float32
    assert model_bf16.seen_dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model_bf16.parameters())
    # training moved the weights and the loss decreased in both precisions
    assert loss_fp32[-1] < loss_fp32[0] and loss_bf16[-1] < loss_bf16[0]
    # bfloat16 has an 8-bit mantissa (relative rounding 2^-8 ~ 0.4%); allow 2% on the loss
    for a, b in zip(loss_fp32, loss_bf16):
        assert b == pytest.approx(a, rel=2e-2)
    for p32, p16 in zip(model_fp32.parameters(), model_bf16.parameters()):
        torch.testing.assert_close(p16, p32, rtol=0.05, atol=5e-3)
