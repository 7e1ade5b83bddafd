"""Learning-rate schedulers for Mask2Former training.

Thin wrapper over detectron2: ``WarmupPolyLR`` (the official Mask2Former schedule) comes from
``detectron2.projects.deeplab`` (Panoptic-DeepLab), ``WarmupMultiStepLR`` and ``WarmupCosineLR``
from ``detectron2.solver``. All of them apply the ``SOLVER.WARMUP_*`` warm-up.
"""

from __future__ import annotations

from detectron2.config import CfgNode
from detectron2.projects.deeplab import build_lr_scheduler as _build_deeplab_lr_scheduler
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["SUPPORTED_LR_SCHEDULERS", "build_lr_scheduler"]

# Values accepted for SOLVER.LR_SCHEDULER_NAME.
SUPPORTED_LR_SCHEDULERS = (
    "WarmupPolyLR",
    "WarmupMultiStepLR",
    "WarmupCosineLR",
    "WarmupStepWithFixedGammaLR",
)


def build_lr_scheduler(cfg: CfgNode, optimizer: Optimizer) -> LRScheduler:
    """Build the scheduler named by ``cfg.SOLVER.LR_SCHEDULER_NAME`` for ``optimizer``.

    Reads ``SOLVER.{LR_SCHEDULER_NAME, MAX_ITER, STEPS, GAMMA, WARMUP_FACTOR, WARMUP_ITERS,
    WARMUP_METHOD, POLY_LR_POWER, POLY_LR_CONSTANT_ENDING, BASE_LR_END}``.
    """
    name = cfg.SOLVER.LR_SCHEDULER_NAME
    if name not in SUPPORTED_LR_SCHEDULERS:
        raise ValueError(
            f"SOLVER.LR_SCHEDULER_NAME={name!r} is not supported; use one of "
            f"{list(SUPPORTED_LR_SCHEDULERS)}"
        )
    return _build_deeplab_lr_scheduler(cfg, optimizer)
