"""Parameter groups, optimizer types and gradient clipping of ``mask2former.solver``."""

import math

import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.layers import FrozenBatchNorm2d
from detectron2.projects.deeplab import add_deeplab_config
from torch import nn

from mask2former.config import add_maskformer2_config
from mask2former.solver import build_lr_scheduler, build_optimizer
from mask2former.solver.optimizer import add_full_model_gradient_clipping


def make_cfg(**solver: object) -> CfgNode:
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.WEIGHT_DECAY = 0.05
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.01
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    for k, v in solver.items():
        cfg.SOLVER[k] = v
    return cfg


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.norm = FrozenBatchNorm2d(4)  # buffers only: no trainable parameters
        self.bn = nn.BatchNorm2d(4)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query_feat = nn.Embedding(5, 4)
        self.level_embed = nn.Parameter(torch.zeros(3, 4))
        self.ln = nn.LayerNorm(4)
        self.gn = nn.GroupNorm(2, 4)
        self.proj = nn.Linear(4, 4)
        self.tied = nn.Linear(4, 4)
        self.tied.weight = self.proj.weight  # shared parameter must appear once


class ToyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.head = Head()


def group_of(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> dict:
    found = [g for g in optimizer.param_groups if any(q is p for q in g["params"])]
    assert len(found) == 1, f"parameter in {len(found)} groups"
    return found[0]


def test_param_groups_lr_and_weight_decay() -> None:
    model = ToyModel()
    opt = build_optimizer(make_cfg(), model)
    assert isinstance(opt, torch.optim.AdamW)
    bb, head = model.backbone, model.head
    assert group_of(opt, bb.conv.weight)["lr"] == pytest.approx(1e-4)
    assert group_of(opt, bb.conv.weight)["weight_decay"] == 0.05
    assert group_of(opt, bb.bn.weight)["weight_decay"] == 0.0
    assert group_of(opt, bb.bn.weight)["lr"] == pytest.approx(1e-4)
    assert group_of(opt, bb.relative_position_bias_table)["weight_decay"] == 0.01
    assert group_of(opt, head.query_feat.weight)["weight_decay"] == 0.01
    assert group_of(opt, head.level_embed)["weight_decay"] == 0.01
    for p in (head.ln.weight, head.ln.bias, head.gn.weight, head.gn.bias):
        assert group_of(opt, p)["weight_decay"] == 0.0
        assert group_of(opt, p)["lr"] == pytest.approx(1e-3)
    assert group_of(opt, head.proj.weight)["weight_decay"] == 0.05
    assert group_of(opt, head.proj.weight)["lr"] == pytest.approx(1e-3)


def test_every_trainable_param_in_exactly_one_group() -> None:
    model = ToyModel()
    opt = build_optimizer(make_cfg(), model)
    in_groups = [p for g in opt.param_groups for p in g["params"]]
    assert len({id(p) for p in in_groups}) == len(in_groups)  # no duplicates
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in in_groups} == trainable
    assert id(model.backbone.frozen.weight) not in {id(p) for p in in_groups}


def test_sgd_momentum_and_unknown_optimizer() -> None:
    opt = build_optimizer(make_cfg(OPTIMIZER="SGD", MOMENTUM=0.8), ToyModel())
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["momentum"] == 0.8 for g in opt.param_groups)
    with pytest.raises(ValueError, match="LAMB"):
        build_optimizer(make_cfg(OPTIMIZER="LAMB"), ToyModel())


def _fill_grads(model: nn.Module, value: float) -> None:
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.full_like(p, value)


def _global_norm(params: list) -> float:
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params))


def test_full_model_clipping_caps_global_norm() -> None:
    cfg = make_cfg(OPTIMIZER="SGD", BASE_LR=0.0)  # lr 0: step only clips
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    model = ToyModel()
    opt = build_optimizer(cfg, model)
    params = [p for g in opt.param_groups for p in g["params"]]
    _fill_grads(model, 1.0)
    before = _global_norm(params)
    assert before > 0.5
    opt.step()
    assert _global_norm(params) == pytest.approx(0.5, rel=1e-4)
    # every gradient is scaled by the same factor (global, not per-parameter)
    ratios = {round(float(p.grad.flatten()[0]), 6) for p in params}
    assert len(ratios) == 1


def test_per_param_norm_clipping_from_detectron2() -> None:
    cfg = make_cfg(OPTIMIZER="SGD", BASE_LR=0.0)
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    model = ToyModel()
    opt = build_optimizer(cfg, model)
    _fill_grads(model, 1.0)
    opt.step()
    for g in opt.param_groups:
        for p in g["params"]:
            assert float(p.grad.norm()) <= 0.5 + 1e-5


def test_full_model_clipping_rejects_non_positive_value() -> None:
    with pytest.raises(ValueError, match="CLIP_VALUE"):
        add_full_model_gradient_clipping(torch.optim.SGD, 0.0)


def _lrs(cfg: CfgNode, iters: list) -> list:
    opt = build_optimizer(cfg, nn.Linear(2, 2))
    sched = build_lr_scheduler(cfg, opt)
    out = {}
    for it in range(max(iters) + 1):
        if it in iters:
            out[it] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return [out[i] for i in iters]


def test_poly_schedule_with_linear_warmup() -> None:
    cfg = make_cfg(
        LR_SCHEDULER_NAME="WarmupPolyLR",
        MAX_ITER=100,
        WARMUP_ITERS=10,
        WARMUP_FACTOR=0.1,
        WARMUP_METHOD="linear",
        POLY_LR_POWER=0.9,
    )
    base = cfg.SOLVER.BASE_LR
    lr0, lr5, lr50, lr99 = _lrs(cfg, [0, 5, 50, 99])
    assert lr0 == pytest.approx(base * 0.1 * (1 - 0.0) ** 0.9)
    assert lr5 == pytest.approx(base * (0.1 * 0.5 + 0.5) * (1 - 0.05) ** 0.9)
    assert lr50 == pytest.approx(base * (1 - 0.5) ** 0.9)
    assert lr99 == pytest.approx(base * (1 - 0.99) ** 0.9)


def test_multistep_schedule() -> None:
    cfg = make_cfg(
        LR_SCHEDULER_NAME="WarmupMultiStepLR",
        MAX_ITER=30,
        STEPS=(10, 20),
        GAMMA=0.1,
        WARMUP_ITERS=0,
    )
    base = cfg.SOLVER.BASE_LR
    assert _lrs(cfg, [0, 9, 10, 19, 20, 29]) == pytest.approx(
        [base, base, base * 0.1, base * 0.1, base * 0.01, base * 0.01]
    )


def test_unknown_scheduler_names_the_value() -> None:
    cfg = make_cfg(LR_SCHEDULER_NAME="Bogus")
    with pytest.raises(ValueError, match="Bogus"):
        build_lr_scheduler(cfg, build_optimizer(cfg, nn.Linear(2, 2)))


def test_groups_merged_by_hyperparameters_and_fused_on_cpu() -> None:
    opt = build_optimizer(make_cfg(), ToyModel())
    keys = [(g["lr"], g["weight_decay"]) for g in opt.param_groups]
    assert len(keys) == len(set(keys))  # one group per distinct (lr, weight decay)
    # backbone {wd, norm, embed} x head {wd, norm, embed}
    assert len(keys) == 6
    assert all(g["fused"] for g in opt.param_groups)
