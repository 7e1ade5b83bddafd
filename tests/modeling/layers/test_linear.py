"""``mask2former.modeling.layers.linear``: the oneDNN linear equals ``F.linear`` (+ ReLU), with and
without gradients."""

import pytest
import torch
from torch.nn import functional as F

from mask2former.modeling.layers.linear import linear, mlp

needs_onednn = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")),
    reason="PyTorch built without oneDNN",
)


def _reference(x, weight, bias, relu):
    y = F.linear(x, weight, bias)
    return F.relu(y) if relu else y


@needs_onednn
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_training_linear_takes_onednn_and_matches_f_linear_gradients(relu, with_bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 70, 48, generator=g)  # [..., in] with two leading dims
    weight = torch.randn(96, 48, generator=g) / 7
    bias = torch.randn(96, generator=g) if with_bias else None
    upstream = torch.randn(3, 70, 96, generator=g)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in (x, weight) + ((bias,) if with_bias else ())]
        y = fn(leaves[0], leaves[1], leaves[2] if with_bias else None, relu)
        y.backward(upstream)
        return y, [t.grad for t in leaves]

    y_ref, grads_ref = run(_reference)
    y, grads = run(linear)
    assert type(y.grad_fn).__name__ == "_OneDNNLinearBackward"  # the oneDNN path was taken
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_training_linear_gives_only_the_gradients_asked_for():
    x = torch.randn(10, 8)  # no gradient for the input (e.g. a frozen stem's output)
    weight = torch.randn(4, 8, requires_grad=True)
    y = linear(x, weight, None)
    y.sum().backward()
    torch.testing.assert_close(weight.grad, torch.ones(10, 4).t() @ x)
    assert x.grad is None


def test_linear_outside_onednn_conditions_is_f_linear():
    x = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    y = linear(x, weight, None, relu=True)
    assert type(y.grad_fn).__name__ == "ReluBackward0"
    assert torch.autograd.gradcheck(lambda a, w: linear(a, w, None), (x, weight))


@needs_onednn
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_mlp_matches_autograd_and_saves_no_hidden_sized_tensor(activation):
    """``mlp`` equals fc2(act(fc1(x))) with gradients and keeps no hidden-sized tensor for its
    backward pass (recomputed there); autograd keeps one (ReLU) or two (GELU)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 50, 16, generator=g)
    params = [torch.randn(64, 16, generator=g) / 4, torch.randn(64, generator=g),
              torch.randn(16, 64, generator=g) / 8, torch.randn(16, generator=g)]  # fmt: skip
    upstream = torch.randn(2, 50, 16, generator=g)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in [x, *params]]
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            y = fn(*leaves)
        y.backward(upstream)
        return y, [t.grad for t in leaves], saved

    act = {"relu": F.relu, "gelu": F.gelu}[activation]

    def reference(x, w1, b1, w2, b2):
        return F.linear(act(F.linear(x, w1, b1)), w2, b2)

    y_ref, grads_ref, saved_ref = run(reference)
    y, grads, saved = run(lambda *args: mlp(*args, activation=activation))
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)

    def hidden_sized(tensors):
        return len({t.data_ptr() for t in tensors if t.numel() == 2 * 50 * 64})

    assert hidden_sized(saved) == 0
    assert hidden_sized(saved_ref) == {"relu": 1, "gelu": 2}[activation]


def test_mlp_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match="silu"):
        mlp(torch.randn(2, 4), torch.randn(8, 4), None, torch.randn(4, 8), None, "silu")
