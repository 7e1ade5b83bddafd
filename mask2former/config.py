# Copyright (c) the mask2former authors.
"""Config keys of Mask2Former ("Masked-attention Mask Transformer for Universal Image Segmentation",
Cheng et al., CVPR 2022) on top of detectron2's defaults.

Every key of the official ``add_maskformer2_config`` (facebookresearch/Mask2Former) is defined
here with its official default, so users' YAML files merge unchanged. Keys marked "ours" are
project additions. Keys marked "ignored" are kept for compatibility and only read by
:func:`validate_maskformer2_config`, which warns when they hold a value the model does not honour.
"""

import logging
from typing import Sequence, Set

import torch
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg
from detectron2.projects.deeplab import add_deeplab_config
from detectron2.utils import comm

from .utils.detectron2_pin import check_detectron2_version

__all__ = [
    "add_maskformer2_config",
    "build_config",
    "fall_back_to_cpu_without_cuda",
    "validate_maskformer2_config",
]

logger = logging.getLogger(__name__)

# Ignored keys already warned about in this process (each is warned about once).
_WARNED_KEYS: Set[str] = set()

AMP_DTYPES = ("float16", "bfloat16")
MASKED_ATTENTION_DECODER = "MultiScaleMaskedTransformerDecoder"


def add_input_config(cfg: CN) -> None:
    """Data loading and augmentation keys (``cfg.INPUT``)."""
    # Name of the dataset mapper in the mapper registry, e.g. "mask_former_semantic",
    # "mask_former_panoptic", "mask_former_instance", "coco_panoptic_lsj", "coco_instance_lsj".
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_semantic"
    # Photometric distortion as in SSD (brightness, contrast, saturation, hue) for semantic mappers.
    cfg.INPUT.COLOR_AUG_SSD = False
    # Random crops are retried until no single category covers more than this fraction of the crop
    # (also defined by detectron2's add_deeplab_config).
    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0
    # Pad image and ground truth to this size in the semantic mapper (-1: no padding).
    cfg.INPUT.SIZE_DIVISIBILITY = -1
    # Large-scale jittering (LSJ, Ghiasi et al. 2021): output square crop size.
    cfg.INPUT.IMAGE_SIZE = 1024
    # LSJ: smallest random resize factor of IMAGE_SIZE.
    cfg.INPUT.MIN_SCALE = 0.1
    # LSJ: largest random resize factor of IMAGE_SIZE.
    cfg.INPUT.MAX_SCALE = 2.0


def add_solver_config(cfg: CN) -> None:
    """Optimizer keys (``cfg.SOLVER``) beyond detectron2's and DeepLab's."""
    # Weight decay applied to embedding parameters (query features/positions, level embeddings).
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0
    # Optimizer: "SGD" or "ADAMW".
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    # Learning-rate multiplier for the backbone parameters.
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1
    # Ours (not official): autocast dtype when SOLVER.AMP.ENABLED, "float16" or "bfloat16"
    # ("bfloat16" is what CPU autocast supports).
    cfg.SOLVER.AMP.DTYPE = "float16"


def add_mask_former_config(cfg: CN) -> None:
    """Transformer decoder, loss and inference keys (``cfg.MODEL.MASK_FORMER``)."""
    cfg.MODEL.MASK_FORMER = CN()
    mf = cfg.MODEL.MASK_FORMER
    # Registered name of the transformer decoder.
    mf.TRANSFORMER_DECODER_NAME = MASKED_ATTENTION_DECODER
    # Which pixel-decoder output feeds the transformer decoder: "multi_scale_pixel_decoder" for
    # the masked-attention decoder (the only value it accepts; see validate_maskformer2_config).
    mf.TRANSFORMER_IN_FEATURE = "res5"
    # Add auxiliary losses on the prediction of every decoder layer.
    mf.DEEP_SUPERVISION = True
    # Classification loss weight of the "no object" class.
    mf.NO_OBJECT_WEIGHT = 0.1
    # Loss weight of the classification (cross-entropy) loss; also the matching cost weight.
    mf.CLASS_WEIGHT = 1.0
    # Loss weight of the dice loss; also the matching cost weight.
    mf.DICE_WEIGHT = 1.0
    # Loss weight of the sigmoid binary cross-entropy mask loss; also the matching cost weight.
    mf.MASK_WEIGHT = 20.0
    # Number of attention heads in the decoder.
    mf.NHEADS = 8
    # Dropout in the pixel decoder's deformable encoder layers (as in the official code; the
    # masked-attention decoder itself has no dropout). The official recipes set 0.0.
    mf.DROPOUT = 0.1
    # Hidden size of the decoder feed-forward networks.
    mf.DIM_FEEDFORWARD = 2048
    # Ignored: the masked-attention decoder has no encoder (the pixel decoder's encoder depth is
    # MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS); kept for YAML compatibility.
    mf.ENC_LAYERS = 0
    # Number of predictions: the one from the learnable queries plus DEC_LAYERS - 1 decoder layers.
    mf.DEC_LAYERS = 6
    # Pre-LayerNorm (True) or post-LayerNorm (False) decoder layers.
    mf.PRE_NORM = False
    # Width of the query features.
    mf.HIDDEN_DIM = 256
    # Number of object queries.
    mf.NUM_OBJECT_QUERIES = 100
    # Always add the 1x1 input projection, even when the feature width equals HIDDEN_DIM.
    mf.ENFORCE_INPUT_PROJ = False
    # Pad the batched images to a multiple of this (the backbone's own value is used when larger).
    mf.SIZE_DIVISIBILITY = 32
    # PointRend-style (Kirillov et al. 2020) point-sampled mask loss: number of sampled points.
    mf.TRAIN_NUM_POINTS = 112 * 112
    # Oversampling factor k of the uncertainty-based point sampling.
    mf.OVERSAMPLE_RATIO = 3.0
    # Fraction beta of points chosen by uncertainty (the rest are uniform random).
    mf.IMPORTANCE_SAMPLE_RATIO = 0.75

    mf.TEST = CN()
    # Produce "sem_seg" outputs at inference.
    mf.TEST.SEMANTIC_ON = True
    # Produce "instances" outputs at inference.
    mf.TEST.INSTANCE_ON = False
    # Produce "panoptic_seg" outputs at inference.
    mf.TEST.PANOPTIC_ON = False
    # Panoptic: drop queries whose class score is not above this.
    mf.TEST.OBJECT_MASK_THRESHOLD = 0.0
    # Panoptic: drop segments keeping less than this fraction of their mask after overlap removal.
    mf.TEST.OVERLAP_THRESHOLD = 0.0
    # Semantic: combine masks at the padded low resolution before resizing to the input size.
    mf.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE = False


def add_pixel_decoder_config(cfg: CN) -> None:
    """Pixel decoder keys (``cfg.MODEL.SEM_SEG_HEAD``), besides detectron2's."""
    # Width of the per-pixel embedding (mask features).
    cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = 256
    # Number of transformer encoder layers in the pixel decoder.
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 0
    # Registered name of the pixel decoder, e.g. "MSDeformAttnPixelDecoder", "BasePixelDecoder".
    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "BasePixelDecoder"
    # Multi-scale deformable attention (Deformable DETR, Zhu et al. 2021): encoded feature levels.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES = ["res3", "res4", "res5"]
    # Deformable attention: sampling points per head and level.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS = 4
    # Kept for YAML compatibility: like the official code, the deformable encoder uses
    # MODEL.MASK_FORMER.NHEADS heads (checkpoints depend on it); a different value is warned about.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS = 8


def add_swin_config(cfg: CN) -> None:
    """Swin Transformer backbone keys (``cfg.MODEL.SWIN``, Liu et al. ICCV 2021)."""
    cfg.MODEL.SWIN = CN()
    # Image size of the pretraining (sets the absolute position embedding size when APE).
    cfg.MODEL.SWIN.PRETRAIN_IMG_SIZE = 224
    # Patch embedding stride and kernel size.
    cfg.MODEL.SWIN.PATCH_SIZE = 4
    # Channel width of the first stage (doubled at every stage).
    cfg.MODEL.SWIN.EMBED_DIM = 96
    # Number of blocks per stage.
    cfg.MODEL.SWIN.DEPTHS = [2, 2, 6, 2]
    # Number of attention heads per stage.
    cfg.MODEL.SWIN.NUM_HEADS = [3, 6, 12, 24]
    # Attention window size.
    cfg.MODEL.SWIN.WINDOW_SIZE = 7
    # MLP hidden width as a multiple of the block width.
    cfg.MODEL.SWIN.MLP_RATIO = 4.0
    # Bias on the query/key/value projection.
    cfg.MODEL.SWIN.QKV_BIAS = True
    # Attention scale override (None: head_dim ** -0.5).
    cfg.MODEL.SWIN.QK_SCALE = None
    # Dropout rate after the patch embedding and in the MLPs.
    cfg.MODEL.SWIN.DROP_RATE = 0.0
    # Dropout rate on the attention weights.
    cfg.MODEL.SWIN.ATTN_DROP_RATE = 0.0
    # Stochastic depth rate (linearly increasing over the blocks).
    cfg.MODEL.SWIN.DROP_PATH_RATE = 0.3
    # Add an absolute position embedding to the patch embedding.
    cfg.MODEL.SWIN.APE = False
    # LayerNorm after the patch embedding.
    cfg.MODEL.SWIN.PATCH_NORM = True
    # Stages returned by the backbone.
    cfg.MODEL.SWIN.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Gradient checkpointing of the blocks (saves memory, costs compute).
    cfg.MODEL.SWIN.USE_CHECKPOINT = False


def add_maskformer2_config(cfg: CN) -> None:
    """Add every Mask2Former key with its official default to ``cfg`` (in place).

    Calls detectron2's ``add_deeplab_config`` first when its keys are missing (the official YAML
    files set ``SOLVER.POLY_LR_POWER`` etc.). Calling it again on a config that has the keys does
    nothing, so values merged in between are kept.
    """
    if "MASK_FORMER" in cfg.MODEL:
        return
    if not hasattr(cfg.SOLVER, "POLY_LR_POWER"):
        add_deeplab_config(cfg)
    add_input_config(cfg)
    add_solver_config(cfg)
    add_mask_former_config(cfg)
    add_pixel_decoder_config(cfg)
    add_swin_config(cfg)


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
    Logs a warning (once per key and process) for ignored keys set to a value the model does not
    honour (``MODEL.MASK_FORMER.ENC_LAYERS``,
    ``MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS``).
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


def _why_no_cuda() -> str:
    if torch.version.cuda is None:
        return f"PyTorch {torch.__version__} is built without CUDA"
    return f"PyTorch {torch.__version__} finds no NVIDIA GPU or driver"


def fall_back_to_cpu_without_cuda(cfg: CN) -> None:
    """Set ``MODEL.DEVICE`` to ``"cpu"`` (in place) when it names CUDA and CUDA is not available.

    detectron2's default and the official YAML files mean ``MODEL.DEVICE: cuda``; this lets them
    run unchanged on a machine without a GPU. The change is logged as one warning saying what
    was asked and what is used, by the main process only (each process of a multi-process CPU
    launch falls back the same way). Any other device (``cpu``, or CUDA when available) is kept.

    Raises:
        ValueError: naming ``MODEL.DEVICE`` when it is not a device PyTorch knows.
    """
    requested = cfg.MODEL.DEVICE
    try:
        device_type = torch.device(requested).type
    except RuntimeError as e:  # e.g. "gpu"
        raise ValueError(f"Unsupported config value MODEL.DEVICE={requested!r}: {e}") from None
    if device_type != "cuda" or torch.cuda.is_available():
        return
    cfg.MODEL.DEVICE = "cpu"
    if comm.get_rank() == 0:
        logger.warning(
            "MODEL.DEVICE=%r asked, but CUDA is not available (%s): using MODEL.DEVICE='cpu'.",
            requested,
            _why_no_cuda(),
        )


def build_config(config_file: str, opts: Sequence[str] = ()) -> CN:
    """The frozen config of every entry point (training, quick start, demo, tools, benchmarks).

    detectron2's defaults + DeepLab's + Mask2Former's, then ``config_file`` (may be empty) and the
    ``KEY VALUE`` overrides ``opts``, checked by :func:`validate_maskformer2_config`: this is the
    one place where a config is validated. ``MODEL.DEVICE`` naming CUDA becomes ``"cpu"`` when
    CUDA is not available (:func:`fall_back_to_cpu_without_cuda`, one warning). Also logs a
    warning (once per process) when the installed detectron2 is not the version this project is
    tested with.

    Raises:
        ValueError: naming the key and value, for a value the model cannot run with.
    """
    check_detectron2_version()
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    fall_back_to_cpu_without_cuda(cfg)
    validate_maskformer2_config(cfg)
    cfg.freeze()
    return cfg
