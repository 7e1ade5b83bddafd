"""Frozen BatchNorm folded into the convolution (mask2former/modeling/backbone/frozen_bn.py): the
values and gradients of detectron2's conv + FrozenBatchNorm2d, unchanged state-dict keys, and a
cached fold that follows every change of the parameters."""

import copy

import torch
from detectron2.config import get_cfg
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import build_resnet_backbone

from mask2former.modeling.backbone import FrozenBNConv2d, fold_frozen_batchnorm


def _resnet() -> torch.nn.Module:
    """A small detectron2 ResNet (R18-like, FrozenBN) with non-trivial BatchNorm statistics."""
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NORM = "FrozenBN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    torch.manual_seed(0)
    model = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    g = torch.Generator().manual_seed(1)
    for name, buf in model.named_buffers():
        if name.endswith("running_var"):
            buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
        elif name.endswith("running_mean"):
            buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
    for name, param in model.named_parameters():
        if name.endswith("norm.weight"):
            param.data.copy_(torch.rand(param.shape, generator=g) + 0.5)
        elif name.endswith("norm.bias"):
            param.data.copy_(torch.randn(param.shape, generator=g) * 0.1)
    return model


def _image(seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 64, 96, generator=g).contiguous(memory_format=torch.channels_last)


def test_fold_replaces_every_conv_with_a_frozen_bn_and_keeps_the_keys():
    model = _resnet()
    convs = sum(type(m) is Conv2d for m in model.modules())
    keys = list(model.state_dict())
    fold_frozen_batchnorm(model)
    assert sum(isinstance(m, FrozenBNConv2d) for m in model.modules()) == convs > 0
    assert not any(type(m) is Conv2d for m in model.modules())
    assert list(model.state_dict()) == keys


def test_folded_inference_equals_detectron2_and_runs_one_op_per_convolution():
    reference = _resnet().eval()
    folded = fold_frozen_batchnorm(copy.deepcopy(reference))
    with torch.no_grad():
        want = reference(_image())
        with torch.profiler.profile() as prof:
            got = folded(_image())
    ops = {e.key for e in prof.key_averages()}
    assert "aten::conv2d" in ops and "aten::batch_norm" not in ops  # the BatchNorms are folded
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-4)


def test_folded_training_gives_detectron2_gradients():
    """In float64 (in float32 the two differ by rounding, which ReLU and max-pool near-ties
    amplify to ~1e-4 of the gradients of this random network)."""
    reference = _resnet().double().train()
    folded = fold_frozen_batchnorm(copy.deepcopy(reference))
    for model in (reference, folded):
        sum(out.square().mean() for out in model(_image().double()).values()).backward()
    grads = {n: p.grad for n, p in folded.named_parameters()}
    for name, param in reference.named_parameters():
        if param.grad is None:
            assert grads[name] is None
        else:
            torch.testing.assert_close(grads[name], param.grad, rtol=1e-9, atol=1e-12)


def test_cached_fold_follows_loaded_weights_and_conversions():
    reference = _resnet().eval()
    folded = fold_frozen_batchnorm(copy.deepcopy(reference))
    other = _resnet()
    with torch.no_grad():
        other.stem.conv1.weight.mul_(-2.0)
        other.res2[0].conv1.norm.running_var.mul_(3.0)
        folded(_image())  # fills the cache
        folded.load_state_dict(other.state_dict())
        reference.load_state_dict(other.state_dict())
        torch.testing.assert_close(folded(_image())["res5"], reference(_image())["res5"],
                                   rtol=1e-4, atol=1e-4)  # fmt: skip
        folded.double()
        out = folded(_image().double())["res5"]
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), reference(_image())["res5"], rtol=1e-4, atol=1e-4)


def test_tracing_sees_detectron2_graph():
    """Exports (ONNX, TorchScript) trace the unfolded convolution and BatchNorm."""
    folded = fold_frozen_batchnorm(_resnet()).eval()
    traced = torch.jit.trace(folded.stem, _image(), check_trace=False)
    assert "batch_norm" in str(traced.inlined_graph)
