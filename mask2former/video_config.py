# Copyright (c) the mask2former authors.
"""Config keys of Video Mask2Former ("Mask2Former for Video Instance Segmentation", Cheng et al.,
2021) on top of :func:`mask2former.config.add_maskformer2_config`.

Every key of the official ``add_maskformer2_video_config`` (facebookresearch/Mask2Former,
``mask2former_video/config.py``) is defined here with its official default, so the official
YouTube-VIS YAML files merge unchanged. The other video settings of the official recipes are
values of detectron2 keys, checked by :func:`validate_maskformer2_video_config`:
``INPUT.MIN_SIZE_TRAIN_SAMPLING: choice_by_clip`` (one random size per clip),
``INPUT.RANDOM_FLIP: flip_by_clip`` (one flip decision per clip) and
``INPUT.CROP.TYPE: absolute_range``. Keys marked "ours" are project additions.
"""

from typing import Tuple

from detectron2.config import CfgNode as CN

from .config import add_maskformer2_config
from .config_validation import _check

__all__ = [
    "CLIP_FLIP_MODES",
    "CLIP_RESIZE_SAMPLING",
    "VIDEO_AUGMENTATIONS",
    "add_maskformer2_video_config",
    "validate_maskformer2_video_config",
]

# Values of INPUT.AUGMENTATIONS (the official set): photometric jitter and a small rotation.
VIDEO_AUGMENTATIONS: Tuple[str, ...] = ("brightness", "contrast", "saturation", "rotation")
# INPUT.MIN_SIZE_TRAIN_SAMPLING of the video mappers: "*_by_clip" draws one size per clip,
# "range"/"choice" one per frame (as officially).
CLIP_RESIZE_SAMPLING: Tuple[str, ...] = ("range", "choice", "range_by_clip", "choice_by_clip")
# INPUT.RANDOM_FLIP of the video mappers: "flip_by_clip" is one horizontal flip decision per clip,
# "horizontal"/"vertical" one per frame (as officially), "none" never flips.
CLIP_FLIP_MODES: Tuple[str, ...] = ("none", "horizontal", "vertical", "flip_by_clip")
# The clip transformer decoder of the official video recipes.
VIDEO_DECODER = "VideoMultiScaleMaskedTransformerDecoder"
# detectron2's RandomCrop types.
_CROP_TYPES: Tuple[str, ...] = ("relative_range", "relative", "absolute", "absolute_range")


def add_video_input_config(cfg: CN) -> None:
    """Clip sampling and augmentation keys of the video mappers (``cfg.INPUT``)."""
    # Number of frames per training clip (T of the video model's [T, H, W] masks).
    cfg.INPUT.SAMPLING_FRAME_NUM = 2
    # Training clips: the other frames are drawn within this many frames of a random reference
    # frame (in both directions, clipped to the video).
    cfg.INPUT.SAMPLING_FRAME_RANGE = 20
    # Shuffle the frames of a training clip instead of keeping them in temporal order.
    cfg.INPUT.SAMPLING_FRAME_SHUFFLE = False
    # Extra training augmentations, each drawn per frame as officially: any of "brightness",
    # "contrast", "saturation" (factors in [0.9, 1.1]) and "rotation" (+-15 degrees).
    cfg.INPUT.AUGMENTATIONS = []


def add_video_inference_config(cfg: CN) -> None:
    """Long-video inference keys (``cfg.MODEL.MASK_FORMER.TEST``); ours, not official."""
    # Ours: bound the memory of video inference by running the frames through the model in windows
    # of WINDOW_SIZE frames and assembling each query's masks over the whole video. False (default)
    # is the official single pass over all frames of a video.
    cfg.MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE = False
    # Ours: frames per window when WINDOW_INFERENCE is on.
    cfg.MODEL.MASK_FORMER.TEST.WINDOW_SIZE = 30


def add_maskformer2_video_config(cfg: CN) -> None:
    """Add the Video Mask2Former keys with their official defaults to ``cfg`` (in place).

    Adds the image keys first (:func:`add_maskformer2_config`) when they are missing, so
    ``add_maskformer2_config(cfg); add_maskformer2_video_config(cfg)`` (the official order) and
    ``add_maskformer2_video_config(cfg)`` alone give the same config. Calling it again on a config
    that has the keys does nothing, so values merged in between are kept.
    """
    add_maskformer2_config(cfg)
    if "SAMPLING_FRAME_NUM" in cfg.INPUT:
        return
    add_video_input_config(cfg)
    add_video_inference_config(cfg)


def validate_maskformer2_video_config(cfg: CN) -> None:
    """Check the video keys of a merged config (called by ``validate_maskformer2_config`` when
    the config has them).

    Raises:
        ValueError: naming the key and value, for values the video mappers or model cannot use.
    """
    inp = cfg.INPUT
    frames = inp.SAMPLING_FRAME_NUM
    _check(frames >= 1, "INPUT.SAMPLING_FRAME_NUM", frames, "must be >= 1")
    span = inp.SAMPLING_FRAME_RANGE
    _check(span >= 0, "INPUT.SAMPLING_FRAME_RANGE", span, "must be >= 0")
    unknown = [a for a in inp.AUGMENTATIONS if a not in VIDEO_AUGMENTATIONS]
    _check(
        not unknown,
        "INPUT.AUGMENTATIONS",
        list(inp.AUGMENTATIONS),
        f"allowed {VIDEO_AUGMENTATIONS}",
    )
    sampling = inp.MIN_SIZE_TRAIN_SAMPLING
    _check(
        sampling in CLIP_RESIZE_SAMPLING,
        "INPUT.MIN_SIZE_TRAIN_SAMPLING",
        sampling,
        f"must be one of {CLIP_RESIZE_SAMPLING}",
    )
    sizes = inp.MIN_SIZE_TRAIN
    if "range" in sampling:
        _check(len(sizes) == 2, "INPUT.MIN_SIZE_TRAIN", sizes, f"{sampling!r} needs [min, max]")
    flip = inp.RANDOM_FLIP
    _check(flip in CLIP_FLIP_MODES, "INPUT.RANDOM_FLIP", flip, f"must be one of {CLIP_FLIP_MODES}")
    if inp.CROP.ENABLED:
        crop = inp.CROP.TYPE
        _check(crop in _CROP_TYPES, "INPUT.CROP.TYPE", crop, f"must be one of {_CROP_TYPES}")
    window = cfg.MODEL.MASK_FORMER.TEST.WINDOW_SIZE
    _check(window >= 1, "MODEL.MASK_FORMER.TEST.WINDOW_SIZE", window, "must be >= 1")
    mf = cfg.MODEL.MASK_FORMER
    if mf.TRANSFORMER_DECODER_NAME == VIDEO_DECODER:
        _check(
            mf.TRANSFORMER_IN_FEATURE == "multi_scale_pixel_decoder",
            "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE",
            mf.TRANSFORMER_IN_FEATURE,
            f"{VIDEO_DECODER} needs 'multi_scale_pixel_decoder'",
        )
