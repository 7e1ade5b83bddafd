# Copyright (c) the mask2former authors.
"""Multi-process training on CPUs (gloo) with detectron2's unmodified trainer.

``DefaultTrainer.__init__`` wraps the model with detectron2's module-level ``create_ddp_model``,
which passes ``device_ids=[local_rank]`` (a GPU index) to ``DistributedDataParallel`` whatever the
model's device; PyTorch refuses that for a CPU model. :func:`cpu_capable_ddp` replaces that public
function, for the duration of a ``with`` block (the trainer's construction), by one that passes
``device_ids=None`` for a model whose parameters are on the CPU and otherwise calls the original
unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import detectron2.engine.defaults as d2_defaults
import torch.distributed as dist
from detectron2.engine import create_ddp_model as detectron2_create_ddp_model
from detectron2.utils import comm
from torch import nn

__all__ = ["cpu_capable_ddp", "create_ddp_model", "finish_distributed"]


def create_ddp_model(model: nn.Module, **kwargs: Any) -> nn.Module:
    """detectron2's ``create_ddp_model``, without GPU ``device_ids`` for a CPU model."""
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if comm.get_world_size() > 1 and on_cpu and "device_ids" not in kwargs:
        kwargs["device_ids"] = None
    return detectron2_create_ddp_model(model, **kwargs)


@contextmanager
def cpu_capable_ddp() -> Iterator[None]:
    """Within the block, ``DefaultTrainer`` wraps CPU models in DDP without ``device_ids``."""
    previous = d2_defaults.create_ddp_model
    d2_defaults.create_ddp_model = create_ddp_model
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = previous


def finish_distributed() -> None:
    """Wait for every process, then close the process group (no-op without one).

    detectron2's ``launch`` leaves the group open when the launched function returns; a process
    that finishes while the others still work (rank 1 of an ``--eval-only`` run returns as soon as
    the predictions are gathered, rank 0 then evaluates) then exits with gloo's threads running
    and can abort ("terminate called without an active exception", SIGABRT: seen 1 in 5 runs of
    the two-process evaluation test).
    """
    if dist.is_available() and dist.is_initialized():
        comm.synchronize()
        dist.destroy_process_group()
