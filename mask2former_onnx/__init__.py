"""Deploy an exported Mask2Former without torch: ``OnnxPredictor`` (ONNX Runtime, numpy, Pillow)
and the numpy post-processing in ``postprocessing``. The ONNX file comes from
``tools/export_model.py``; install ONNX Runtime with ``pip install -e .[onnx]``."""

from .postprocessing import (
    instance_inference,
    masks_to_boxes,
    panoptic_inference,
    postprocess,
    resize_bilinear,
    sem_seg_postprocess,
    semantic_inference,
)
from .predictor import OnnxPredictor, resized_shape

__all__ = [
    "OnnxPredictor",
    "instance_inference",
    "masks_to_boxes",
    "panoptic_inference",
    "postprocess",
    "resize_bilinear",
    "resized_shape",
    "sem_seg_postprocess",
    "semantic_inference",
]
