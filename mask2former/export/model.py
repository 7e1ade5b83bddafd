"""The network of a :class:`MaskFormer` up to the head's logits, in a form that exports.

One input, ``image`` [1, 3, H, W] float32 RGB in 0..255 (H, W multiples of the model's size
divisibility, 32); two outputs, ``pred_logits`` [1, Q, K+1] and ``pred_masks`` [1, Q, H/4, W/4],
equal to ``model.sem_seg_head(model.backbone(...))``. The channel swap that the config's
``INPUT.FORMAT`` implies (BGR models) and the normalisation by ``MODEL.PIXEL_MEAN/STD`` are inside.
The multi-scale deformable-attention pixel decoder runs through
:class:`~mask2former.export.pixel_decoder.ExportMSDeformAttnPixelDecoder` (standard ops only).
"""

import copy
from collections import OrderedDict
from typing import Tuple

import torch
from torch import Tensor, nn

from ..modeling.meta_arch import MaskFormer
from ..modeling.pixel_decoder import MSDeformAttnPixelDecoder
from .pixel_decoder import ExportMSDeformAttnPixelDecoder

__all__ = ["ExportableMaskFormer"]

INPUT_FORMATS = ("RGB", "BGR")


class ExportableMaskFormer(nn.Module):
    """``image`` [1, 3, H, W] RGB 0..255 -> (``pred_logits`` [1, Q, K+1], ``pred_masks``
    [1, Q, H/4, W/4]). Shares the weights of ``model``; use it in eval mode."""

    def __init__(self, model: MaskFormer, input_format: str) -> None:
        """
        Args:
            model: a built MaskFormer (weights loaded).
            input_format: ``INPUT.FORMAT`` of its config, the channel order ``pixel_mean`` and
                the backbone expect ("RGB" or "BGR").
        """
        super().__init__()
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"INPUT.FORMAT must be one of {INPUT_FORMATS}, got {input_format!r}")
        self.swap_channels = input_format == "BGR"
        self.size_divisibility = model.size_divisibility
        self.backbone = model.backbone
        # A shallow copy of the head whose pixel decoder is the export-friendly one: the head's
        # own forward (the choice of the predictor's input) is reused as it is.
        head = copy.copy(model.sem_seg_head)
        head._modules = OrderedDict(head._modules)
        if isinstance(head.pixel_decoder, MSDeformAttnPixelDecoder):
            head.pixel_decoder = ExportMSDeformAttnPixelDecoder(head.pixel_decoder)
        self.sem_seg_head = head
        self.register_buffer("pixel_mean", model.pixel_mean.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("pixel_std", model.pixel_std.detach().clone().view(1, -1, 1, 1))

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor]:
        """
        Args:
            image: [1, 3, H, W] float32 RGB 0..255, H and W multiples of ``size_divisibility``.
        Returns:
            pred_logits [1, Q, K+1], pred_masks [1, Q, H/4, W/4].
        """
        if self.swap_channels:
            image = image.flip(1)  # RGB -> BGR
        x = (image - self.pixel_mean) / self.pixel_std
        outputs = self.sem_seg_head(self.backbone(x))
        return outputs["pred_logits"], outputs["pred_masks"]

    @torch.no_grad()
    def reference_outputs(self, model: MaskFormer, image: Tensor) -> Tuple[Tensor, Tensor]:
        """The model's own head outputs for ``image`` (same layout as ``forward``), for checks."""
        if self.swap_channels:
            image = image.flip(1)
        x = (image - self.pixel_mean) / self.pixel_std
        outputs = model.sem_seg_head(model.backbone(x))
        return outputs["pred_logits"], outputs["pred_masks"]
