#!/usr/bin/env python
"""Convert a torchvision ImageNet ResNet checkpoint to the detectron2 pickle MODEL.WEIGHTS loads.

    python tools/convert-torchvision-to-d2.py resnet50-0676ba61.pth R-50.pkl
    python tools/convert-torchvision-to-d2.py resnet101-63fe2227.pth R-101.pkl

The output has the layout of detectron2's model-zoo ImageNetPretrained/torchvision/R-50.pkl (written
by detectron2's tool of the same name). Use it with the torchvision input convention, which the
Mask2Former R50/R101 recipes already set:

    MODEL.WEIGHTS: R-101.pkl
    MODEL.PIXEL_MEAN: [123.675, 116.280, 103.530]
    MODEL.PIXEL_STD: [58.395, 57.120, 57.375]
    MODEL.RESNETS.STRIDE_IN_1X1: False
    INPUT.FORMAT: RGB

See mask2former/checkpoint/resnet.py for the renaming.
"""

import sys
from typing import Dict, Tuple

from torch import Tensor

from mask2former.checkpoint import convert_torchvision_resnet_state_dict
from mask2former.checkpoint.cli import converter_main


def convert(state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], str]:
    return convert_torchvision_resnet_state_dict(state), "torchvision"


if __name__ == "__main__":
    sys.exit(converter_main(__doc__, convert))
