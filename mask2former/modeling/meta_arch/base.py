"""What the image and video meta-architectures (``MaskFormer``, ``VideoMaskFormer``) share: a
backbone and a segmentation head trained with a set criterion, on inputs normalised and padded
the same way (MaskFormer, Cheng et al., NeurIPS 2021; Mask2Former, CVPR 2022)."""

from typing import Any, Dict, List, Sequence

import torch
from detectron2.modeling import Backbone
from detectron2.structures import ImageList
from torch import Tensor, nn

__all__ = ["MaskClassificationModel"]


class MaskClassificationModel(nn.Module):
    """Backbone, head and criterion, input normalisation and padding, weighted losses."""

    def __init__(
        self,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        criterion: nn.Module,
        size_divisibility: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
    ) -> None:
        """
        Args:
            backbone: a detectron2 backbone.
            sem_seg_head: the segmentation head on the backbone's features.
            criterion: the training loss; its ``weight_dict`` weights (and selects) the losses.
            size_divisibility: pad inputs to a multiple of this; < 0 uses the backbone's.
            pixel_mean, pixel_std: per-channel normalisation of the inputs.
        """
        super().__init__()
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        self.criterion = criterion
        if size_divisibility < 0:
            size_divisibility = self.backbone.size_divisibility
        self.size_divisibility = size_divisibility
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def normalize(self, images: Sequence[Tensor]) -> List[Tensor]:
        """[3, H, W] images (0..255, the channel order of ``pixel_mean``) on the model's device,
        normalised."""
        return [(x.to(self.device) - self.pixel_mean) / self.pixel_std for x in images]

    def preprocess(self, images: Sequence[Tensor]) -> ImageList:
        """Normalised images zero-padded to one [N, 3, H_pad, W_pad] batch."""
        return ImageList.from_tensors(self.normalize(images), self.size_divisibility)

    def losses(
        self, outputs: Dict[str, Any], targets: List[Dict[str, Tensor]]
    ) -> Dict[str, Tensor]:
        """Criterion losses times ``criterion.weight_dict``; losses not in it are dropped."""
        losses = self.criterion(outputs, targets)
        weight_dict = self.criterion.weight_dict
        return {k: v * weight_dict[k] for k, v in losses.items() if k in weight_dict}
