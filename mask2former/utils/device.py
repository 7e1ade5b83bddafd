# Copyright (c) the mask2former authors.
"""``MODEL.DEVICE`` on machines without CUDA: the official YAML files run unchanged on a CPU."""

import logging

import torch
from detectron2.config import CfgNode as CN
from detectron2.utils import comm

__all__ = ["fall_back_to_cpu_without_cuda"]

logger = logging.getLogger(__name__)


def _why_no_cuda() -> str:
    if torch.version.cuda is None:
        return f"PyTorch {torch.__version__} is built without CUDA"
    return f"PyTorch {torch.__version__} finds no NVIDIA GPU or driver"


def fall_back_to_cpu_without_cuda(cfg: CN) -> None:
    """Set ``MODEL.DEVICE`` to ``"cpu"`` (in place) when it names CUDA and CUDA is not available.

    detectron2's default and the official YAML files mean ``MODEL.DEVICE: cuda``; this lets them
    run unchanged on a machine without a GPU. The change is logged as one warning saying what
    was asked and what is used, by the main process only (each process of a multi-process CPU
    launch falls back the same way). Any other device (``cpu``, or CUDA when available) is kept.

    Raises:
        ValueError: naming ``MODEL.DEVICE`` when it is not a device PyTorch knows.
    """
    requested = cfg.MODEL.DEVICE
    try:
        device_type = torch.device(requested).type
    except RuntimeError as e:  # e.g. "gpu"
        raise ValueError(f"Unsupported config value MODEL.DEVICE={requested!r}: {e}") from None
    if device_type != "cuda" or torch.cuda.is_available():
        return
    cfg.MODEL.DEVICE = "cpu"
    if comm.get_rank() == 0:
        logger.warning(
            "MODEL.DEVICE=%r asked, but CUDA is not available (%s): using MODEL.DEVICE='cpu'.",
            requested,
            _why_no_cuda(),
        )
