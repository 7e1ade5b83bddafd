# Linear layers through oneDNN on CPU for inference. PyTorch's float32 ``F.linear`` on CPU calls the
# BLAS library it was built with (MKL in the official wheels); oneDNN's matmul, which PyTorch ships
# too (it runs the convolutions), is up to 1.5x faster on some CPUs (measured: 110 vs 72 GFLOP/s
# per core on an AMD EPYC, where MKL does not use its AVX-512 kernels) and fuses the ReLU.
# ``torch.ops.mkldnn._linear_pointwise`` is the op PyTorch's own compiler (Inductor) emits for
# this; it has no autograd formula, so it is used only where no gradient is needed.
from typing import Optional

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["linear"]


def _use_onednn(x: Tensor, weight: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.is_autocast_enabled("cpu")
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and not torch.jit.is_tracing()  # exports (ONNX) and compilers see a plain F.linear
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
    )


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, relu: bool = False) -> Tensor:
    """``F.linear(x, weight, bias)``, followed by a ReLU if ``relu``.

    Args:
        x: [..., in_features]; weight: [out_features, in_features]; bias: [out_features].
    Returns:
        [..., out_features]: the values of ``F.linear`` up to float rounding, through oneDNN when
        the inputs are float32 CPU tensors that need no gradient.
    """
    if _use_onednn(x, weight):
        return torch.ops.mkldnn._linear_pointwise(
            x, weight, bias, "relu" if relu else "none", [], ""
        )
    y = F.linear(x, weight, bias)
    return F.relu(y) if relu else y
