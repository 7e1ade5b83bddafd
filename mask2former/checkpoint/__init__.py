"""Converters of published ImageNet backbones to the detectron2 pickles that ``MODEL.WEIGHTS``
loads (``tools/convert-pretrained-swin-model-to-d2.py``, ``tools/convert-torchvision-to-d2.py``)."""

from .io import ConversionError, load_published_state_dict, save_d2_pickle
from .resnet import convert_torchvision_resnet_state_dict
from .swin import SWIN_LAYOUTS, convert_swin_state_dict, detect_swin_layout

__all__ = [
    "SWIN_LAYOUTS",
    "ConversionError",
    "convert_swin_state_dict",
    "convert_torchvision_resnet_state_dict",
    "detect_swin_layout",
    "load_published_state_dict",
    "save_d2_pickle",
]
