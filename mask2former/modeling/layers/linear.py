# Linear layers through oneDNN on CPU. PyTorch's float32 ``F.linear`` on CPU calls the
# BLAS library it was built with (MKL in the official wheels); oneDNN's matmul, which PyTorch ships
# too (it runs the convolutions), is up to 1.5x faster on some CPUs (measured: 110 vs 72 GFLOP/s
# per core on an AMD EPYC, where MKL does not use its AVX-512 kernels) and fuses the ReLU.
# ``torch.ops.mkldnn._linear_pointwise`` is the op PyTorch's own compiler (Inductor) emits for
# this. It has no autograd formula; for training, ``_OneDNNLinear`` gives it one: the input's
# gradient is a oneDNN linear too (by the transposed weight), the weight's gradient stays the BLAS
# ``grad^T @ x`` (oneDNN would need both [N, ...] operands transposed first, whose allocations
# cost more than they save). Measured on the pixel decoder's FFN (2 x 5376 tokens, 256 -> 1024 ->
# 256, forward + backward, AMD EPYC, 2 threads): 262 -> 190 ms.
from typing import Optional

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["linear"]


def _use_onednn(x: Tensor, weight: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and not torch.jit.is_tracing()  # exports (ONNX) and compilers see a plain F.linear
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
    )


def _needs_grad(*tensors: Optional[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _linear_pointwise(x: Tensor, weight: Tensor, bias: Optional[Tensor], relu: bool) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu" if relu else "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """``F.linear`` (+ ReLU) through oneDNN with its gradients (no double backward)."""

    @staticmethod
    def forward(  # noqa: ANN205
        ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], relu: bool
    ):
        x2d = x.reshape(-1, x.shape[-1])  # [N, in]
        y = _linear_pointwise(x2d, weight, bias, relu)  # [N, out]
        # With the ReLU the output is saved for its gradient's mask (the next linear saves the
        # same tensor as its input, so this costs no memory there).
        ctx.save_for_backward(x2d, weight, y if relu else None)
        ctx.relu, ctx.has_bias = relu, bias is not None
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # noqa: ANN205
        x2d, weight, y = ctx.saved_tensors
        grad2d = grad.reshape(-1, grad.shape[-1])  # [N, out]
        if ctx.relu:
            grad2d = torch.ops.aten.threshold_backward(grad2d, y, 0)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _linear_pointwise(grad2d, weight.t().contiguous(), None, False)
            grad_x = grad_x.view(*grad.shape[:-1], weight.shape[1])
        if ctx.needs_input_grad[1]:
            grad_weight = grad2d.t().mm(x2d)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad2d.sum(0)
        return grad_x, grad_weight, grad_bias, None


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, relu: bool = False) -> Tensor:
    """``F.linear(x, weight, bias)``, followed by a ReLU if ``relu``.

    Args:
        x: [..., in_features]; weight: [out_features, in_features]; bias: [out_features].
    Returns:
        [..., out_features]: the values of ``F.linear`` up to float rounding, through oneDNN when
        the inputs are float32 CPU tensors outside autocast (with its gradients when they need
        one).
    """
    if _use_onednn(x, weight):
        if _needs_grad(x, weight, bias):
            return _OneDNNLinear.apply(x, weight, bias, relu)
        return _linear_pointwise(x, weight, bias, relu)
    y = F.linear(x, weight, bias)
    return F.relu(y) if relu else y
