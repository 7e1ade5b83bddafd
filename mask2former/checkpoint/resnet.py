"""torchvision ResNet checkpoints -> the names of detectron2's ``ResNet`` backbone.

The mapping of detectron2's ``tools/convert-torchvision-to-d2.py`` (which wrote the model zoo's
``ImageNetPretrained/torchvision/R-50.pkl``), written as explicit rules so that an unknown name is
an error instead of a silently unused weight:

=================================  =======================================
torchvision                        detectron2
=================================  =======================================
``conv1.weight``                   ``stem.conv1.weight``
``bn1.{weight,bias,running_*}``    ``stem.conv1.norm.*``
``layer{t}.{b}.conv{k}.weight``    ``res{t+1}.{b}.conv{k}.weight``
``layer{t}.{b}.bn{k}.*``           ``res{t+1}.{b}.conv{k}.norm.*``
``layer{t}.{b}.downsample.0.*``    ``res{t+1}.{b}.shortcut.*``
``layer{t}.{b}.downsample.1.*``    ``res{t+1}.{b}.shortcut.norm.*``
=================================  =======================================

The ImageNet classifier ``fc.*`` and the BatchNorm ``num_batches_tracked`` counters are dropped
(detectron2's ``FrozenBatchNorm2d`` has no counter; the official tool kept both as unused keys).
torchvision weights expect RGB input scaled to [0, 1] and normalised with mean (0.485, 0.456, 0.406)
and std (0.229, 0.224, 0.225): in detectron2's 0-255 convention ``INPUT.FORMAT: RGB``,
``MODEL.PIXEL_MEAN: [123.675, 116.28, 103.53]``, ``MODEL.PIXEL_STD: [58.395, 57.12, 57.375]``, and
the stride in the 3x3 convolution (``MODEL.RESNETS.STRIDE_IN_1X1: False``), as the Mask2Former
ResNet recipes set.
"""

import logging
import re
from typing import Dict, Mapping

from torch import Tensor

from .io import ConversionError

__all__ = ["convert_torchvision_resnet_state_dict"]

logger = logging.getLogger(__name__)

_FIELDS = r"(?:weight|bias|running_mean|running_var)"
_STEM = re.compile(rf"^(conv1\.weight|bn1\.{_FIELDS})$")
_BLOCK = re.compile(
    rf"^layer([1-4])\.(\d+)\.(conv\d\.weight|bn\d\.{_FIELDS}"
    rf"|downsample\.0\.weight|downsample\.1\.{_FIELDS})$"
)
_DROPPED = re.compile(r"^fc\.(weight|bias)$|(^|\.)num_batches_tracked$")


def _rename(key: str) -> str:
    if m := _STEM.match(key):
        prefix, name = "stem.", m.group(1)
    elif m := _BLOCK.match(key):
        # torchvision's layer1..layer4 are detectron2's res2..res5
        prefix, name = f"res{int(m.group(1)) + 1}.{m.group(2)}.", m.group(3)
    else:
        raise ConversionError(f"{key!r} is not a torchvision ResNet weight")
    name = re.sub(r"^bn(\d)", r"conv\1.norm", name)
    name = name.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
    return prefix + name


def convert_torchvision_resnet_state_dict(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Returns the detectron2 ResNet state dict of a torchvision ResNet/ResNeXt state dict.

    Raises:
        ConversionError: a name is not a torchvision ResNet one (the message names it).
    """
    out: Dict[str, Tensor] = {}
    dropped = [key for key in state if _DROPPED.search(key)]
    for key, value in state.items():
        if key not in dropped:
            out[_rename(key)] = value
    if "stem.conv1.weight" not in out:
        raise ConversionError("no 'conv1.weight': not a torchvision ResNet state dict")
    logger.info(
        "torchvision ResNet: %d tensors converted, %d dropped (classifier fc, BatchNorm counters)",
        len(out),
        len(dropped),
    )
    return out
