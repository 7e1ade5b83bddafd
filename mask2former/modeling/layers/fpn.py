# Top-down FPN path (Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017)
# without the bottom-up outputs, as in the pixel decoders of MaskFormer (Cheng et al., NeurIPS
# 2021) and Mask2Former (Cheng et al., CVPR 2022). The convs are registered on the pixel decoder
# itself under the official names (``adapter_N`` lateral, ``layer_N`` output; N = 1 is the finest
# level), so official checkpoints load unchanged.
from typing import Callable, List, Optional, Sequence, Tuple, Union

import fvcore.nn.weight_init as weight_init
from detectron2.layers import Conv2d, get_norm
from torch import Tensor, nn
from torch.nn import functional as F

Norm = Optional[Union[str, Callable[[int], nn.Module]]]


def _conv(in_channels: int, conv_dim: int, kernel_size: int, norm: Norm, relu: bool) -> Conv2d:
    """kxk conv (same padding) + norm (+ ReLU); bias only when ``norm == ""``, as official."""
    return Conv2d(
        in_channels,
        conv_dim,
        kernel_size=kernel_size,
        stride=1,
        padding=kernel_size // 2,
        bias=norm == "",
        norm=get_norm(norm, conv_dim),
        activation=F.relu if relu else None,
    )


def output_conv(in_channels: int, conv_dim: int, norm: Norm) -> Conv2d:
    """3x3 conv + norm + ReLU, c2_xavier initialised: an FPN output conv."""
    conv = _conv(in_channels, conv_dim, 3, norm, relu=True)
    weight_init.c2_xavier_fill(conv)
    return conv


def add_fpn_convs(
    parent: nn.Module, in_channels: Sequence[int], conv_dim: int, norm: Norm
) -> Tuple[List[Conv2d], List[Conv2d]]:
    """Register a lateral and an output conv per level on ``parent``.

    Level ``i`` (0-based, fine to coarse) gets ``adapter_{i+1}`` (1x1 conv + norm,
    in_channels[i] -> conv_dim) and ``layer_{i+1}`` (3x3 conv + norm + ReLU, conv_dim ->
    conv_dim), both c2_xavier initialised.

    Returns:
        (lateral convs, output convs), each in top-down order (coarse first), as plain lists:
        the modules are registered on ``parent`` under the names above.
    """
    lateral_convs, output_convs = [], []
    for idx, channels in enumerate(in_channels):
        lateral = _conv(channels, conv_dim, 1, norm, relu=False)
        output = _conv(conv_dim, conv_dim, 3, norm, relu=True)
        weight_init.c2_xavier_fill(lateral)
        weight_init.c2_xavier_fill(output)
        parent.add_module(f"adapter_{idx + 1}", lateral)
        parent.add_module(f"layer_{idx + 1}", output)
        lateral_convs.append(lateral)
        output_convs.append(output)
    return lateral_convs[::-1], output_convs[::-1]


def fpn_merge(
    lateral: nn.Module, output: nn.Module, x: Tensor, coarser: Tensor, mode: str
) -> Tensor:
    """One top-down step: ``output(lateral(x) + upsample(coarser))``.

    Args:
        lateral, output: the level's lateral and output convs.
        x: [B, C_in, H, W] input feature of this level.
        coarser: [B, conv_dim, h, w] output of the next coarser level.
        mode: upsampling, "nearest" (MaskFormer's FPN) or "bilinear" (Mask2Former's, without
            corner alignment).
    Returns:
        [B, conv_dim, H, W]
    """
    y = lateral(x)
    align_corners = False if mode == "bilinear" else None
    y = y + F.interpolate(coarser, size=y.shape[-2:], mode=mode, align_corners=align_corners)
    return output(y)
