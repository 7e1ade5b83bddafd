"""ONNX export (``torch.export`` front end, dynamic H and W) and TorchScript tracing of an
:class:`~mask2former.export.model.ExportableMaskFormer`, plus the metadata a deployed model needs
for post-processing (stored in the ONNX file's ``metadata_props`` under ``mask2former``)."""

import json
import logging
from typing import Any, Dict, Tuple

import torch
from detectron2.config import CfgNode
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..modeling.meta_arch import MaskFormer
from .model import ExportableMaskFormer

__all__ = ["METADATA_KEY", "deploy_metadata", "export_onnx", "trace_torchscript"]

logger = logging.getLogger(__name__)

METADATA_KEY = "mask2former"
INPUT_NAMES = ["image"]
OUTPUT_NAMES = ["pred_logits", "pred_masks"]
# Inputs up to 32 * MAX_BLOCKS pixels on a side.
MAX_BLOCKS = 512


def deploy_metadata(model: MaskFormer, cfg: CfgNode) -> Dict[str, Any]:
    """What ``mask2former_onnx`` needs to pre- and post-process like ``MaskFormer.forward``: the
    model's thresholds, flags and thing classes, and the config's test-time resizing."""
    mean = model.pixel_mean.flatten().tolist()
    if cfg.INPUT.FORMAT == "BGR":
        mean = mean[::-1]
    meta = model.metadata
    thing_ids = []
    if getattr(meta, "thing_dataset_id_to_contiguous_id", None) is not None:
        thing_ids = model.thing_ids
    return {
        "num_classes": int(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES),
        "class_names": list(getattr(meta, "stuff_classes", None) or []),
        "thing_ids": [int(i) for i in thing_ids],
        "pixel_mean_rgb": mean,
        "size_divisibility": int(model.size_divisibility),
        "min_size_test": int(cfg.INPUT.MIN_SIZE_TEST),
        "max_size_test": int(cfg.INPUT.MAX_SIZE_TEST),
        "object_mask_threshold": float(model.object_mask_threshold),
        "overlap_threshold": float(model.overlap_threshold),
        "test_topk_per_image": int(model.test_topk_per_image),
        "semantic_on": bool(model.semantic_on),
        "instance_on": bool(model.instance_on),
        "panoptic_on": bool(model.panoptic_on),
        "sem_seg_postprocess_before_inference": bool(model.sem_seg_postprocess_before_inference),
    }


def _example(model: ExportableMaskFormer, size: Tuple[int, int]) -> torch.Tensor:
    d = model.size_divisibility or 32
    if size[0] % d or size[1] % d:
        raise ValueError(f"example size {size} must be a multiple of {d}")
    generator = torch.Generator().manual_seed(0)
    return torch.rand((1, 3, *size), generator=generator) * 255  # [1, 3, H, W] RGB 0..255


def export_onnx(
    model: ExportableMaskFormer,
    path: str,
    *,
    example_size: Tuple[int, int] = (256, 320),
    opset: int = 18,
    metadata: Dict[str, Any] | None = None,
) -> None:
    """Writes ``path``: input ``image`` [1, 3, H, W] (H, W dynamic multiples of 32), outputs
    ``pred_logits`` and ``pred_masks``; standard ONNX ops only (``GridSample`` needs opset 16+)."""
    if opset < 16:
        raise ValueError(f"opset {opset} has no GridSample (the deformable attention); use >= 16")
    model = model.eval()
    example = _example(model, example_size)
    d = model.size_divisibility or 32
    blocks_h = torch.export.Dim("blocks_h", min=2, max=MAX_BLOCKS)
    blocks_w = torch.export.Dim("blocks_w", min=2, max=MAX_BLOCKS)
    # The math attention kernel: the CPU flash kernel's output strides break the decomposition.
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        program = torch.onnx.export(
            model,
            (example,),
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_shapes={"image": {2: d * blocks_h, 3: d * blocks_w}},
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    if metadata is not None:
        program.model.metadata_props[METADATA_KEY] = json.dumps(metadata)
    program.save(path)
    logger.info("Wrote %s (opset %d)", path, opset)


def trace_torchscript(
    model: ExportableMaskFormer, path: str, *, example_size: Tuple[int, int] = (256, 320)
) -> torch.jit.ScriptModule:
    """Traces ``model`` at ``example_size`` and saves it. The trace holds the sizes of the
    example (Swin's window padding and the deformable attention's level sizes are Python
    integers), so it is valid for that input size only: use ONNX for other sizes."""
    model = model.eval()
    example = _example(model, example_size)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        traced = torch.jit.trace(model, (example,), check_trace=False)
    traced.save(path)
    logger.info("Wrote %s (traced at %dx%d)", path, *example_size)
    return traced
