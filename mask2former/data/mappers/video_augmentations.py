# Copyright (c) the mask2former authors.
"""Clip-level augmentations of the video mappers (Video Mask2Former, Cheng et al. 2021; the
``*_by_clip`` sampling styles come from IFC, Hwang et al. NeurIPS 2021).

A clip augmentation draws its random parameters (a shortest-edge size, a flip decision) once per
clip and applies them to every frame, computing each frame's transform from that frame's own size.
The mapper calls :func:`start_clip` before the first frame of every clip. (The official code
counts calls instead, which silently desynchronises when a clip has another number of frames than
INPUT.SAMPLING_FRAME_NUM.) Which draws are per clip follows the official config values:

- ``INPUT.MIN_SIZE_TRAIN_SAMPLING``: ``choice_by_clip`` / ``range_by_clip`` per clip,
  ``choice`` / ``range`` per frame;
- ``INPUT.RANDOM_FLIP``: ``flip_by_clip`` (horizontal) per clip, ``horizontal`` / ``vertical`` per
  frame, ``none``;
- the random crop (``INPUT.CROP``, e.g. ``absolute_range``) and ``INPUT.AUGMENTATIONS``
  (brightness, contrast, saturation in [0.9, 1.1], rotation in [-15, 15] degrees) per frame, as
  officially: on COCO pseudo-clips the per-frame crop is what simulates motion.
"""

import sys
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from fvcore.transforms.transform import HFlipTransform, NoOpTransform, Transform, VFlipTransform
from PIL import Image

from ...video_config import CLIP_FLIP_MODES, CLIP_RESIZE_SAMPLING, VIDEO_AUGMENTATIONS
from .common import inference_augmentations

__all__ = [
    "ClipAugmentation",
    "ClipRandomFlip",
    "ClipResizeShortestEdge",
    "build_clip_augmentations",
    "clip_augmentations_from_config",
    "start_clip",
]

Augmentations = List[Union[T.Augmentation, Transform]]


class ClipAugmentation(T.Augmentation):
    """An augmentation whose random draw can be shared by the frames of a clip.

    Subclasses implement :meth:`draw` (the random parameters) and :meth:`transform_for`
    (the transform of one frame given them). With ``per_clip`` the draw happens on the first frame
    after :meth:`start_clip`, else on every frame.
    """

    def __init__(self, per_clip: bool) -> None:
        super().__init__()
        self.per_clip = per_clip
        self._params: Optional[object] = None

    def start_clip(self) -> None:
        """Forget the current draw: the next frame starts a new clip."""
        self._params = None

    def draw(self) -> object:
        raise NotImplementedError

    def transform_for(self, image: np.ndarray, params: object) -> Transform:
        raise NotImplementedError

    def get_transform(self, image: np.ndarray) -> Transform:
        if self._params is None or not self.per_clip:
            self._params = self.draw()
        return self.transform_for(image, self._params)


class ClipResizeShortestEdge(ClipAugmentation):
    """Resize the shortest edge to a random size (capped by ``max_size`` on the longest edge),
    like detectron2's ``ResizeShortestEdge``, with the ``*_by_clip`` sampling styles."""

    def __init__(
        self,
        short_edge_length: Union[int, Sequence[int]],
        max_size: int = sys.maxsize,
        sample_style: str = "choice_by_clip",
        interp: int = Image.BILINEAR,
    ) -> None:
        """
        Args:
            short_edge_length: [min, max] for the "range" styles, the choices otherwise.
            sample_style: one of "range", "choice", "range_by_clip", "choice_by_clip".
        """
        if sample_style not in CLIP_RESIZE_SAMPLING:
            raise ValueError(
                f"sample_style must be one of {CLIP_RESIZE_SAMPLING}, got {sample_style!r}"
            )
        super().__init__(per_clip=sample_style.endswith("_by_clip"))
        if isinstance(short_edge_length, int):
            short_edge_length = (short_edge_length, short_edge_length)
        self.is_range = sample_style.startswith("range")
        if self.is_range and len(short_edge_length) != 2:
            raise ValueError(f"{sample_style!r} needs [min, max] sizes, got {short_edge_length}")
        self.short_edge_length = tuple(short_edge_length)
        self.sample_style = sample_style
        self.max_size = max_size
        self.interp = interp

    def draw(self) -> int:
        lo, hi = self.short_edge_length[0], self.short_edge_length[-1]
        if self.is_range:
            return int(np.random.randint(lo, hi + 1))
        return int(np.random.choice(self.short_edge_length))

    def transform_for(self, image: np.ndarray, params: object) -> Transform:
        size = int(params)
        if size == 0:
            return NoOpTransform()
        h, w = image.shape[:2]
        new_h, new_w = T.ResizeShortestEdge.get_output_shape(h, w, size, self.max_size)
        return T.ResizeTransform(h, w, new_h, new_w, self.interp)


class ClipRandomFlip(ClipAugmentation):
    """Flip horizontally or vertically with probability ``prob``, per clip or per frame."""

    def __init__(
        self, prob: float = 0.5, *, horizontal: bool = True, per_clip: bool = True
    ) -> None:
        super().__init__(per_clip=per_clip)
        self.prob = prob
        self.horizontal = horizontal

    def draw(self) -> bool:
        return bool(self._rand_range() < self.prob)

    def transform_for(self, image: np.ndarray, params: object) -> Transform:
        if not params:
            return NoOpTransform()
        h, w = image.shape[:2]
        return HFlipTransform(w) if self.horizontal else VFlipTransform(h)


def start_clip(augmentations: Sequence[Union[T.Augmentation, Transform]]) -> None:
    """Start a new clip: every :class:`ClipAugmentation` of ``augmentations`` draws again."""
    for augmentation in augmentations:
        if isinstance(augmentation, ClipAugmentation):
            augmentation.start_clip()


def build_clip_augmentations(
    *,
    min_size: Union[int, Sequence[int]],
    max_size: int,
    sampling: str = "choice_by_clip",
    random_flip: str = "flip_by_clip",
    crop: Optional[Tuple[str, Sequence[float]]] = None,
    extra: Sequence[str] = (),
) -> Augmentations:
    """Training augmentations of the video mappers, in the official order: crop, resize, flip,
    ``extra``.

    Args:
        min_size, max_size, sampling: :class:`ClipResizeShortestEdge` (INPUT.MIN_SIZE_TRAIN,
            INPUT.MAX_SIZE_TRAIN, INPUT.MIN_SIZE_TRAIN_SAMPLING).
        random_flip: INPUT.RANDOM_FLIP, one of "none", "horizontal", "vertical", "flip_by_clip".
        crop: ``(type, size)`` of detectron2's ``RandomCrop`` (INPUT.CROP.TYPE / SIZE), or None.
        extra: INPUT.AUGMENTATIONS, any of "brightness", "contrast", "saturation", "rotation".
    """
    if random_flip not in CLIP_FLIP_MODES:
        raise ValueError(f"INPUT.RANDOM_FLIP must be one of {CLIP_FLIP_MODES}, got {random_flip!r}")
    unknown = [name for name in extra if name not in VIDEO_AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Unknown INPUT.AUGMENTATIONS {unknown}; allowed: {VIDEO_AUGMENTATIONS}")
    augmentations: Augmentations = []
    if crop is not None:
        augmentations.append(T.RandomCrop(crop[0], crop[1]))
    augmentations.append(ClipResizeShortestEdge(min_size, max_size, sampling))
    if random_flip != "none":
        augmentations.append(
            ClipRandomFlip(
                horizontal=random_flip != "vertical", per_clip=random_flip == "flip_by_clip"
            )
        )
    for name in ("brightness", "contrast", "saturation"):
        if name in extra:
            augmentations.append(getattr(T, f"Random{name.capitalize()}")(0.9, 1.1))
    if "rotation" in extra:
        augmentations.append(
            T.RandomRotation(
                [-15, 15], expand=False, center=[(0.4, 0.4), (0.6, 0.6)], sample_style="range"
            )
        )
    return augmentations


def clip_augmentations_from_config(cfg: CfgNode, is_train: bool) -> Augmentations:
    """Training: :func:`build_clip_augmentations` from ``cfg.INPUT``. Inference: a shortest-edge
    resize to INPUT.MIN_SIZE_TEST (capped at INPUT.MAX_SIZE_TEST), the same for every frame."""
    if not is_train:
        return inference_augmentations(cfg)
    inp = cfg.INPUT
    return build_clip_augmentations(
        min_size=inp.MIN_SIZE_TRAIN,
        max_size=inp.MAX_SIZE_TRAIN,
        sampling=inp.MIN_SIZE_TRAIN_SAMPLING,
        random_flip=inp.RANDOM_FLIP,
        crop=(inp.CROP.TYPE, inp.CROP.SIZE) if inp.CROP.ENABLED else None,
        extra=inp.AUGMENTATIONS,
    )
