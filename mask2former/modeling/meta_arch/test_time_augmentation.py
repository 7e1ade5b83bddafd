"""Multi-scale + flip test-time augmentation for semantic segmentation.

Follows the official Mask2Former ``SemanticSegmentorWithTTA`` (facebookresearch/Mask2Former) on
top of detectron2's ``DatasetMapperTTA``: the model runs on every resized (and flipped) copy of
the image, each ``sem_seg`` (already resized by the model to the original ``height x width``) is
un-flipped, and the results are averaged.
"""

import copy
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data.detection_utils import read_image
from detectron2.modeling import DatasetMapperTTA
from fvcore.transforms import HFlipTransform, TransformList
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["SemanticSegmentorWithTTA"]


class SemanticSegmentorWithTTA(nn.Module):
    """A semantic segmentor with test-time augmentation.

    Calling it has the interface of the wrapped model's inference ``forward``: a list of dataset
    dicts (``image``: [C, H, W] uint8 tensor in ``INPUT.FORMAT``, or ``file_name``;
    ``height``, ``width``: output size) -> a list of ``{"sem_seg": [K, height, width]}``.
    Build it as ``SemanticSegmentorWithTTA(cfg, model)`` (reads ``TEST.AUG.MIN_SIZES``,
    ``TEST.AUG.MAX_SIZE``, ``TEST.AUG.FLIP`` and ``INPUT.FORMAT``) or from explicit arguments.
    """

    @configurable
    def __init__(
        self,
        *,
        model: nn.Module,
        tta_mapper: Callable[[Dict[str, Any]], List[Dict[str, Any]]],
        batch_size: int = 1,
        input_format: str = "BGR",
    ) -> None:
        """
        Args:
            model: the semantic segmentor; in eval mode it must return ``sem_seg`` at each
                input's ``height x width``. A DistributedDataParallel wrapper is removed.
            tta_mapper: dataset dict -> augmented dataset dicts, each with a ``transforms``
                :class:`TransformList` (e.g. detectron2's ``DatasetMapperTTA``).
            batch_size: number of augmented images per model call.
            input_format: channel order of images read from ``file_name`` ("BGR" or "RGB").
        """
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tta_mapper = tta_mapper
        self.batch_size = batch_size
        self.input_format = input_format

    @classmethod
    def from_config(
        cls,
        cfg: CfgNode,
        model: nn.Module,
        tta_mapper: Optional[Callable[[Dict[str, Any]], List[Dict[str, Any]]]] = None,
        batch_size: int = 1,
    ) -> Dict[str, Any]:
        return {
            "model": model,
            "tta_mapper": tta_mapper if tta_mapper is not None else DatasetMapperTTA(cfg),
            "batch_size": batch_size,
            "input_format": cfg.INPUT.FORMAT,
        }

    def forward(self, batched_inputs: List[Dict[str, Any]]) -> List[Dict[str, torch.Tensor]]:
        """Same input/output format as the wrapped model's inference (see the class doc)."""
        return [self._inference_one_image(self._maybe_read_image(x)) for x in batched_inputs]

    def _maybe_read_image(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        ret = copy.copy(dataset_dict)
        if "image" not in ret:
            image = read_image(ret.pop("file_name"), self.input_format)  # [H, W, C]
            ret["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if "height" not in ret and "width" not in ret:
            ret["height"], ret["width"] = ret["image"].shape[1:]
        return ret

    def _get_augmented_inputs(
        self, dataset_dict: Dict[str, Any]
    ) -> Tuple[List[Dict[str, Any]], List[TransformList]]:
        augmented_inputs = self.tta_mapper(dataset_dict)
        tfms = [x.pop("transforms") for x in augmented_inputs]
        return augmented_inputs, tfms

    def _inference_one_image(self, dataset_dict: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Average of the un-flipped ``sem_seg`` [K, height, width] over all augmentations."""
        augmented_inputs, tfms = self._get_augmented_inputs(dataset_dict)
        total: Optional[torch.Tensor] = None
        for start in range(0, len(augmented_inputs), self.batch_size):
            batch = augmented_inputs[start : start + self.batch_size]
            with torch.no_grad():
                outputs = self.model(batch)
            for output, tfm in zip(outputs, tfms[start : start + self.batch_size]):
                sem_seg = output["sem_seg"]  # [K, height, width]
                if any(isinstance(t, HFlipTransform) for t in tfm.transforms):
                    sem_seg = sem_seg.flip(dims=[2])  # undo the horizontal flip along W
                total = sem_seg.clone() if total is None else total + sem_seg
        if total is None:
            raise ValueError("The TTA mapper produced no augmented input")
        return {"sem_seg": total / len(augmented_inputs)}
