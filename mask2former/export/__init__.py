"""Export of a trained model: ONNX (dynamic sizes, standard ops) and TorchScript traces of the
network up to its logits (``tools/export_model.py``). The numpy post-processing and the ONNX
Runtime predictor that run the exported file without torch are the ``mask2former_onnx`` package."""

from .exporters import METADATA_KEY, deploy_metadata, export_onnx, trace_torchscript
from .model import ExportableMaskFormer
from .pixel_decoder import ExportMSDeformAttnPixelDecoder

__all__ = [
    "METADATA_KEY",
    "ExportMSDeformAttnPixelDecoder",
    "ExportableMaskFormer",
    "deploy_metadata",
    "export_onnx",
    "trace_torchscript",
]
