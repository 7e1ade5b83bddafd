# Copyright (c) the mask2former authors.
"""Checks of a merged config (:func:`validate_maskformer2_config`), run once by
:func:`mask2former.config.build_config`: values the model cannot run with are errors naming the
key and value; keys kept only for compatibility with the official files are warned about once."""

import logging
from typing import Set

from detectron2.config import CfgNode as CN

__all__ = [
    "AMP_DTYPES",
    "COMPATIBILITY_ONLY_KEYS",
    "MASKED_ATTENTION_DECODER",
    "validate_maskformer2_config",
]

logger = logging.getLogger(__name__)

# Ignored keys already warned about in this process (each is warned about once).
_WARNED_KEYS: Set[str] = set()

AMP_DTYPES = ("float16", "bfloat16")
MASKED_ATTENTION_DECODER = "MultiScaleMaskedTransformerDecoder"
# Official keys that no code reads (as in the official code); see validate_maskformer2_config.
COMPATIBILITY_ONLY_KEYS = (
    "MODEL.MASK_FORMER.ENC_LAYERS",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS",
)


def _warn_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    if key not in _WARNED_KEYS:
        _WARNED_KEYS.add(key)
        logger.warning(message)


def _check(condition: bool, key: str, value: object, requirement: str) -> None:
    """Raise a ValueError naming ``key`` and ``value`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"Unsupported config value {key}={value!r}: {requirement}.")


def validate_maskformer2_config(cfg: CN) -> None:
    """Check the Mask2Former keys of a merged config.

    Raises:
        ValueError: naming the key and value, for values the model cannot run with.
    Logs a warning (once per key and process) for the keys of :data:`COMPATIBILITY_ONLY_KEYS` set
    to a value that would matter if they were read (``MODEL.MASK_FORMER.ENC_LAYERS`` != 0,
    ``MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS`` != ``MODEL.MASK_FORMER.NHEADS``).
    Configs with the video keys (:func:`mask2former.add_maskformer2_video_config`) are also checked
    by :func:`mask2former.video_config.validate_maskformer2_video_config`.
    """
    mf = cfg.MODEL.MASK_FORMER
    _check(mf.DEC_LAYERS >= 1, "MODEL.MASK_FORMER.DEC_LAYERS", mf.DEC_LAYERS, "must be >= 1")
    queries = mf.NUM_OBJECT_QUERIES
    _check(queries >= 1, "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", queries, "must be >= 1")
    _check(mf.NHEADS >= 1, "MODEL.MASK_FORMER.NHEADS", mf.NHEADS, "must be >= 1")
    _check(
        mf.HIDDEN_DIM % mf.NHEADS == 0,
        "MODEL.MASK_FORMER.HIDDEN_DIM",
        mf.HIDDEN_DIM,
        f"must be divisible by MODEL.MASK_FORMER.NHEADS={mf.NHEADS}",
    )
    _check(
        cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES >= 1,
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
        cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        "must be >= 1",
    )
    for name in ("NO_OBJECT_WEIGHT", "CLASS_WEIGHT", "DICE_WEIGHT", "MASK_WEIGHT"):
        value = mf[name]
        _check(value >= 0, f"MODEL.MASK_FORMER.{name}", value, "must be >= 0")
    points = mf.TRAIN_NUM_POINTS
    _check(points >= 1, "MODEL.MASK_FORMER.TRAIN_NUM_POINTS", points, "must be >= 1")
    oversample = mf.OVERSAMPLE_RATIO
    _check(oversample >= 1, "MODEL.MASK_FORMER.OVERSAMPLE_RATIO", oversample, "must be >= 1")
    ratio = mf.IMPORTANCE_SAMPLE_RATIO
    _check(0 <= ratio <= 1, "MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO", ratio, "must be in [0, 1]")

    test = mf.TEST
    modes = (test.SEMANTIC_ON, test.INSTANCE_ON, test.PANOPTIC_ON)
    _check(
        any(modes),
        "MODEL.MASK_FORMER.TEST.{SEMANTIC_ON,INSTANCE_ON,PANOPTIC_ON}",
        modes,
        "at least one inference output must be enabled",
    )
    for name in ("OBJECT_MASK_THRESHOLD", "OVERLAP_THRESHOLD"):
        value = test[name]
        _check(0 <= value <= 1, f"MODEL.MASK_FORMER.TEST.{name}", value, "must be in [0, 1]")

    dtype = cfg.SOLVER.AMP.DTYPE
    _check(dtype in AMP_DTYPES, "SOLVER.AMP.DTYPE", dtype, f"must be one of {AMP_DTYPES}")
    dtype = cfg.TEST.AMP.DTYPE
    _check(dtype in AMP_DTYPES, "TEST.AMP.DTYPE", dtype, f"must be one of {AMP_DTYPES}")
    enabled = cfg.TEST.AMP.ENABLED
    _check(isinstance(enabled, bool), "TEST.AMP.ENABLED", enabled, "must be True or False")
    for key in ("TEST.CPU_KEEP_FREED_MEMORY", "SOLVER.CPU_KEEP_FREED_MEMORY"):
        section, name = key.split(".")
        keep = cfg[section][name]
        _check(isinstance(keep, bool), key, keep, "must be True or False")

    if mf.TRANSFORMER_DECODER_NAME == MASKED_ATTENTION_DECODER:
        _check(
            mf.TRANSFORMER_IN_FEATURE == "multi_scale_pixel_decoder",
            "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE",
            mf.TRANSFORMER_IN_FEATURE,
            f"{MASKED_ATTENTION_DECODER} needs 'multi_scale_pixel_decoder'",
        )
    enc_heads = cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS
    if enc_heads != mf.NHEADS:
        _warn_once(
            "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS",
            f"MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS={enc_heads} is ignored: "
            f"the deformable encoder uses MODEL.MASK_FORMER.NHEADS={mf.NHEADS} heads, as official.",
        )
    if mf.ENC_LAYERS != 0:
        _warn_once(
            "MODEL.MASK_FORMER.ENC_LAYERS",
            f"MODEL.MASK_FORMER.ENC_LAYERS={mf.ENC_LAYERS} is ignored: the transformer encoder is "
            "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS (in the pixel decoder).",
        )
    if "SAMPLING_FRAME_NUM" in cfg.INPUT:
        from .video_config import validate_maskformer2_video_config

        validate_maskformer2_video_config(cfg)
