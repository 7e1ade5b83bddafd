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
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["linear", "mlp"]


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
        need = ctx.needs_input_grad
        grad_x, grad_weight, grad_bias = _linear_backward(
            grad2d, x2d, weight, need[0], need[1], ctx.has_bias and need[2]
        )
        if grad_x is not None:
            grad_x = grad_x.view(*grad.shape[:-1], weight.shape[1])
        return grad_x, grad_weight, grad_bias, None


def _linear_backward(
    grad2d: Tensor, x2d: Tensor, weight: Tensor, need_x: bool, need_weight: bool, need_bias: bool
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Gradients (input [N, in] through oneDNN, weight [out, in] through BLAS, bias [out]) of
    ``y = x2d @ weight.T + bias`` from ``grad2d`` [N, out]; None for those not asked for."""
    grad_x = _linear_pointwise(grad2d, weight.t().contiguous(), None, False) if need_x else None
    grad_weight = grad2d.t().mm(x2d) if need_weight else None
    grad_bias = grad2d.sum(0) if need_bias else None
    return grad_x, grad_weight, grad_bias


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


class _OneDNNMLP(torch.autograd.Function):
    """``fc2(act(fc1(x)))`` through oneDNN that keeps only ``x`` for its backward pass: the
    hidden layer (``hidden``/``in`` times the size of ``x``; with GELU twice, before and after the
    activation) is recomputed there by one more ``fc1``. Measured at 512x512, batch 2: 250 MB
    less for the pixel decoder's FFNs, 460 MB less for Swin-T's MLPs, for one more ``fc1``
    forward per layer (~3 % of the training step)."""

    @staticmethod
    def forward(  # noqa: ANN205
        ctx,
        x: Tensor,
        w1: Tensor,
        b1: Optional[Tensor],
        w2: Tensor,
        b2: Optional[Tensor],
        activation: str,
    ):
        x2d = x.reshape(-1, x.shape[-1])  # [N, in]
        y = _linear_pointwise(_hidden(x2d, w1, b1, activation)[1], w2, b2, False)  # [N, out]
        ctx.save_for_backward(x2d, w1, b1, w2)
        ctx.activation, ctx.has_bias2 = activation, b2 is not None
        return y.view(*x.shape[:-1], w2.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # noqa: ANN205
        x2d, w1, b1, w2 = ctx.saved_tensors
        grad2d = grad.reshape(-1, grad.shape[-1])  # [N, out]
        need = ctx.needs_input_grad
        pre, hidden = _hidden(x2d, w1, b1, ctx.activation)  # the forward pass's values
        grad_hidden, grad_w2, grad_b2 = _linear_backward(
            grad2d, hidden, w2, True, need[3], ctx.has_bias2 and need[4]
        )  # grad_hidden: [N, hidden]
        if ctx.activation == "relu":
            grad_pre = torch.ops.aten.threshold_backward(grad_hidden, hidden, 0)
        else:
            grad_pre = torch.ops.aten.gelu_backward(grad_hidden, pre)
        del pre, hidden, grad_hidden
        grad_x, grad_w1, grad_b1 = _linear_backward(
            grad_pre, x2d, w1, need[0], need[1], b1 is not None and need[2]
        )
        if grad_x is not None:
            grad_x = grad_x.view(*grad.shape[:-1], w1.shape[1])
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2, None


def _hidden(
    x2d: Tensor, w1: Tensor, b1: Optional[Tensor], activation: str
) -> Tuple[Optional[Tensor], Tensor]:
    """(pre-activation or None for ReLU, activation) of ``fc1``; ReLU fused into the linear."""
    if activation == "relu":
        return None, _linear_pointwise(x2d, w1, b1, True)
    pre = _linear_pointwise(x2d, w1, b1, False)
    return pre, F.gelu(pre)


_ACTIVATIONS = ("relu", "gelu")


def mlp(
    x: Tensor,
    w1: Tensor,
    b1: Optional[Tensor],
    w2: Tensor,
    b2: Optional[Tensor],
    activation: str = "relu",
) -> Tensor:
    """``F.linear(act(F.linear(x, w1, b1)), w2, b2)`` with ``act`` ReLU or exact GELU, through
    oneDNN like :func:`linear`; when a gradient is needed, the hidden layer is not kept for the
    backward pass but recomputed (see ``_OneDNNMLP``).

    Args:
        x: [..., in]; w1: [hidden, in]; b1: [hidden]; w2: [out, hidden]; b2: [out].
        activation: "relu" or "gelu".
    Returns:
        [..., out]
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    if _use_onednn(x, w1) and w2.dtype == torch.float32 and _needs_grad(x, w1, b1, w2, b2):
        return _OneDNNMLP.apply(x, w1, b1, w2, b2, activation)
    if activation == "relu":
        return linear(linear(x, w1, b1, relu=True), w2, b2)
    return linear(F.gelu(linear(x, w1, b1)), w2, b2)
