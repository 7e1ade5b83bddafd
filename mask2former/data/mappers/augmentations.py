# Copyright (c) the mask2former authors.
"""Augmentations of the Mask2Former mappers.

* :class:`ColorAugSSDTransform`: the photometric distortion of SSD (Liu et al., ECCV 2016) as
  packaged by mmsegmentation / detectron2 PointRend; random brightness, contrast, saturation, hue.
* :func:`build_lsj_augmentations`: large-scale jittering (Ghiasi et al., "Simple Copy-Paste",
  CVPR 2021) as in Mask2Former's COCO recipes: flip, random rescale of a square target, fixed crop.
* :func:`build_semantic_augmentations`: MaskFormer's semantic-style pipeline: shortest-edge
  resize, (category-area-constrained) random crop, optional SSD colour jitter, flip.
"""

import random
from typing import List, Optional, Sequence, Union

import cv2
import numpy as np
from detectron2.data import transforms as T
from fvcore.transforms.transform import Transform

__all__ = ["ColorAugSSDTransform", "build_lsj_augmentations", "build_semantic_augmentations"]

Augmentations = List[Union[T.Augmentation, Transform]]


class ColorAugSSDTransform(Transform):
    """SSD photometric distortion of a uint8 image; geometry and labels are unchanged.

    The random draws happen in :meth:`apply_image` (Python ``random``, seeded by detectron2's
    ``seed_all_rng``), so one instance placed in an augmentation list distorts every image
    differently. Brightness is applied first, then contrast before or after saturation + hue
    (each step with probability 1/2).
    """

    def __init__(
        self,
        img_format: str,
        brightness_delta: int = 32,
        contrast_low: float = 0.5,
        contrast_high: float = 1.5,
        saturation_low: float = 0.5,
        saturation_high: float = 1.5,
        hue_delta: int = 18,
    ) -> None:
        super().__init__()
        if img_format not in ("BGR", "RGB"):
            raise ValueError(f"ColorAugSSDTransform needs an RGB or BGR image, got {img_format!r}")
        self.is_rgb = img_format == "RGB"
        self.brightness_delta = brightness_delta
        self.contrast_low, self.contrast_high = contrast_low, contrast_high
        self.saturation_low, self.saturation_high = saturation_low, saturation_high
        self.hue_delta = hue_delta

    def apply_image(self, img: np.ndarray, interp: Optional[int] = None) -> np.ndarray:
        """``img``: ``[H, W, 3]`` uint8 -> distorted ``[H, W, 3]`` uint8."""
        if self.is_rgb:
            img = img[:, :, ::-1]  # [H, W, 3] RGB -> BGR for OpenCV
        img = self._brightness(img)
        if random.randrange(2):
            img = self._hue(self._saturation(self._contrast(img)))
        else:
            img = self._contrast(self._hue(self._saturation(img)))
        if self.is_rgb:
            img = img[:, :, ::-1]  # [H, W, 3] BGR -> RGB
        return np.ascontiguousarray(img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        raise NotImplementedError("ColorAugSSDTransform is not invertible")

    @staticmethod
    def _scale(img: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
        return np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    def _brightness(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            delta = random.uniform(-self.brightness_delta, self.brightness_delta)
            return self._scale(img, beta=delta)
        return img

    def _contrast(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            return self._scale(img, alpha=random.uniform(self.contrast_low, self.contrast_high))
        return img

    def _saturation(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
            alpha = random.uniform(self.saturation_low, self.saturation_high)
            hsv[:, :, 1] = self._scale(hsv[:, :, 1], alpha=alpha)
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img

    def _hue(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
            shift = random.randint(-self.hue_delta, self.hue_delta)
            hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + shift) % 180  # OpenCV hue is in [0, 180)
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img


def build_lsj_augmentations(
    image_size: int, min_scale: float, max_scale: float, random_flip: str = "horizontal"
) -> Augmentations:
    """Flip (``random_flip``: "horizontal", "vertical" or "none"), rescale so that the image fits
    a square of ``image_size * U(min_scale, max_scale)``, then crop/pad to ``image_size``^2."""
    if random_flip not in ("horizontal", "vertical", "none"):
        raise ValueError(f"INPUT.RANDOM_FLIP must be horizontal/vertical/none, got {random_flip!r}")
    augmentations: Augmentations = []
    if random_flip != "none":
        augmentations.append(
            T.RandomFlip(horizontal=random_flip == "horizontal", vertical=random_flip == "vertical")
        )
    augmentations += [
        T.ResizeScale(
            min_scale=min_scale,
            max_scale=max_scale,
            target_height=image_size,
            target_width=image_size,
        ),
        T.FixedSizeCrop(crop_size=(image_size, image_size)),
    ]
    return augmentations


def build_semantic_augmentations(
    *,
    min_size: Union[int, Sequence[int]],
    max_size: int,
    sampling: str,
    crop_type: Optional[str] = None,
    crop_size: Optional[Sequence[float]] = None,
    single_category_max_area: Optional[float] = None,
    ignore_value: int = 255,
    color_aug_ssd_format: Optional[str] = None,
) -> Augmentations:
    """MaskFormer training augmentations.

    Args:
        min_size, max_size, sampling: ``ResizeShortestEdge`` (INPUT.MIN_SIZE_TRAIN, ...).
        crop_type, crop_size: random crop (INPUT.CROP.TYPE/SIZE); no crop when ``crop_type`` is
            None.
        single_category_max_area: when set, the crop is retried until no category covers more
            than this fraction (``RandomCrop_CategoryAreaConstraint``; needs ``sem_seg``);
            ``ignore_value`` pixels are not counted.
        color_aug_ssd_format: image format for :class:`ColorAugSSDTransform`; None disables it.
    """
    augmentations: Augmentations = [T.ResizeShortestEdge(min_size, max_size, sampling)]
    if crop_type is not None:
        if single_category_max_area is not None:
            augmentations.append(
                T.RandomCrop_CategoryAreaConstraint(
                    crop_type, crop_size, single_category_max_area, ignore_value
                )
            )
        else:
            augmentations.append(T.RandomCrop(crop_type, crop_size))
    if color_aug_ssd_format is not None:
        augmentations.append(ColorAugSSDTransform(img_format=color_aug_ssd_format))
    augmentations.append(T.RandomFlip())
    return augmentations
