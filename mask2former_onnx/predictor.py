"""Run an ONNX file written by ``tools/export_model.py`` with ONNX Runtime, numpy and Pillow only.

Pre-processing is detectron2's test-time ``ResizeShortestEdge`` (Pillow bilinear) and zero padding
of the normalised image to the size divisibility (here: padding with the pixel mean, which the
graph normalises to 0); post-processing is :func:`mask2former_onnx.postprocessing.postprocess`. The
metadata (thresholds, thing classes, test sizes) comes from the ONNX file.
"""

import json
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .postprocessing import postprocess

__all__ = ["OnnxPredictor", "resized_shape"]

METADATA_KEY = "mask2former"


def resized_shape(height: int, width: int, short_edge: int, max_size: int) -> Tuple[int, int]:
    """detectron2's ``ResizeShortestEdge.get_output_shape``: (new_h, new_w)."""
    scale = short_edge / min(height, width)
    if height < width:
        new_h, new_w = float(short_edge), scale * width
    else:
        new_h, new_w = scale * height, float(short_edge)
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


class OnnxPredictor:
    """``predictor(image_rgb)`` -> results as ``MaskFormer.forward`` returns them (numpy).

    Args:
        model_path: the exported ``.onnx`` file.
        num_threads: ONNX Runtime intra-op threads (its default if None).
    """

    def __init__(self, model_path: str, num_threads: Optional[int] = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(
            model_path, options, providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise ValueError(
                f"{model_path} has no '{METADATA_KEY}' metadata (export it with "
                "tools/export_model.py)"
            )
        self.metadata: Dict[str, Any] = json.loads(meta)

    @property
    def default_tasks(self) -> Tuple[str, ...]:
        m = self.metadata
        flags = (
            ("semantic", "semantic_on"),
            ("instance", "instance_on"),
            ("panoptic", "panoptic_on"),
        )
        return tuple(task for task, key in flags if m[key])

    def preprocess(self, image_rgb: np.ndarray) -> Tuple[np.ndarray, Tuple[int, int]]:
        """[H, W, 3] uint8 RGB -> ([1, 3, H_pad, W_pad] float32, resized (h, w))."""
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image_rgb.shape}")
        m = self.metadata
        h, w = resized_shape(*image_rgb.shape[:2], m["min_size_test"], m["max_size_test"])
        image = np.asarray(Image.fromarray(image_rgb).resize((w, h), Image.BILINEAR))
        d = m["size_divisibility"] or 32
        pad_h, pad_w = -(-h // d) * d, -(-w // d) * d
        padded = np.empty((pad_h, pad_w, 3), dtype=np.float32)
        padded[:] = np.asarray(m["pixel_mean_rgb"], dtype=np.float32)
        padded[:h, :w] = image
        return padded.transpose(2, 0, 1)[None].copy(), (h, w)

    def run(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The network: [1, 3, H, W] -> (pred_logits [1, Q, K+1], pred_masks [1, Q, H/4, W/4])."""
        logits, masks = self.session.run(["pred_logits", "pred_masks"], {"image": image})
        return logits, masks

    def __call__(self, image_rgb: np.ndarray, tasks: Optional[Sequence[str]] = None) -> Dict:
        m = self.metadata
        tasks = tuple(tasks) if tasks is not None else self.default_tasks
        image, resized = self.preprocess(image_rgb)
        logits, masks = self.run(image)
        return postprocess(
            logits,
            masks,
            padded_size=image.shape[-2:],
            image_size=resized,
            output_size=image_rgb.shape[:2],
            tasks=tasks,
            thing_ids=m["thing_ids"],
            object_mask_threshold=m["object_mask_threshold"],
            overlap_threshold=m["overlap_threshold"],
            test_topk_per_image=m["test_topk_per_image"],
            sem_seg_postprocess_before_inference=(
                m["sem_seg_postprocess_before_inference"] or bool(set(tasks) - {"semantic"})
            ),
            panoptic_on=m["panoptic_on"],
        )
