# The autocast dtype of a ``<KEY>.{ENABLED,DTYPE}`` config pair (SOLVER.AMP for training,
# TEST.AMP for inference), with one rule for both: float16 is a CUDA feature.
import logging
from typing import Optional

import torch

__all__ = ["AMP_TORCH_DTYPES", "autocast_dtype"]

logger = logging.getLogger(__name__)

# Values of SOLVER.AMP.DTYPE and TEST.AMP.DTYPE.
AMP_TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def autocast_dtype(enabled: bool, dtype: str, device: str, key: str) -> Optional[torch.dtype]:
    """The autocast dtype of ``{key}.ENABLED`` / ``{key}.DTYPE`` on ``device`` (MODEL.DEVICE).

    Returns None for float32: autocast off, or float16 asked for on a device other than CUDA
    (logged as a warning: float16 needs CUDA; bfloat16 is what CPUs run).

    Raises:
        ValueError: ``dtype`` is not a key of :data:`AMP_TORCH_DTYPES`, naming ``{key}.DTYPE``.
    """
    if not enabled:
        return None
    if dtype not in AMP_TORCH_DTYPES:
        raise ValueError(f"{key}.DTYPE={dtype!r} must be one of {sorted(AMP_TORCH_DTYPES)}")
    if dtype == "float16" and torch.device(device).type != "cuda":
        logger.warning(
            "%s.ENABLED with DTYPE 'float16' on device %r: float16 mixed precision needs CUDA; "
            "running in float32 (set %s.DTYPE bfloat16 for CPU mixed precision).",
            key,
            device,
            key,
        )
        return None
    return AMP_TORCH_DTYPES[dtype]
