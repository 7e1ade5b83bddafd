#!/usr/bin/env python
"""Convert a Swin Transformer ImageNet checkpoint to the detectron2 pickle MODEL.WEIGHTS loads.

    python tools/convert-pretrained-swin-model-to-d2.py swin_tiny_patch4_window7_224.pth \
        swin_tiny_patch4_window7_224.pkl

Reads the checkpoints of the Swin authors ({"model": state_dict}, github.com/microsoft/
Swin-Transformer releases) and of timm (model.safetensors or pytorch_model.bin of
swin_tiny_patch4_window7_224 ...); the layout is detected. Name the output as the recipe's
MODEL.WEIGHTS expects (swin_tiny_patch4_window7_224.pkl, swin_base_patch4_window12_384_22k.pkl ...)
and keep the input convention the Swin recipes set:

    INPUT.FORMAT: RGB
    MODEL.PIXEL_MEAN: [123.675, 116.280, 103.530]
    MODEL.PIXEL_STD: [58.395, 57.120, 57.375]

See mask2former/checkpoint/swin.py for what is renamed, added and dropped.
"""

import sys
from typing import Dict, Tuple

from torch import Tensor

from mask2former.checkpoint import convert_swin_state_dict
from mask2former.checkpoint.cli import converter_main


def convert(state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], str]:
    converted, layout = convert_swin_state_dict(state)
    publisher = "Swin Transformer authors" if layout == "swin" else "timm"
    return converted, f"{publisher} (converted for Mask2Former)"


if __name__ == "__main__":
    sys.exit(converter_main(__doc__, convert))
