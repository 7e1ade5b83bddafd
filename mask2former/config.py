# Copyright (c) the mask2former authors.
"""Config keys of Mask2Former ("Masked-attention Mask Transformer for Universal Image Segmentation",
Cheng et al., CVPR 2022) on top of detectron2's defaults.

Every key of the official ``add_maskformer2_config`` (facebookresearch/Mask2Former) is defined
here with its official default, so users' YAML files merge unchanged. Each comment says which code
reads the key and what its value does. Keys marked "ours" are project additions. The keys of
:data:`COMPATIBILITY_ONLY_KEYS` are marked "ignored": they are kept for compatibility and only read
by :func:`validate_maskformer2_config`, which warns when they hold a value that would matter.
"""

import logging
from typing import Sequence

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg
from detectron2.projects.deeplab import add_deeplab_config

from .config_errors import merge_config_file, merge_config_opts
from .config_validation import (
    COMPATIBILITY_ONLY_KEYS,
    MASKED_ATTENTION_DECODER,
    validate_maskformer2_config,
)
from .utils.detectron2_pin import check_detectron2_version
from .utils.device import fall_back_to_cpu_without_cuda

__all__ = [
    "COMPATIBILITY_ONLY_KEYS",
    "add_maskformer2_config",
    "build_config",
    "default_config",
    "fall_back_to_cpu_without_cuda",
    "validate_maskformer2_config",
]

logger = logging.getLogger(__name__)


def add_input_config(cfg: CN) -> None:
    """Data loading and augmentation keys (``cfg.INPUT``)."""
    # Dataset mapper (data/mappers/registry.py: build_dataset_mapper), by its registered name:
    # "mask_former_semantic", "mask_former_panoptic", "mask_former_instance" (MaskFormer-style
    # augmentation), "coco_panoptic_lsj", "coco_instance_lsj" (large-scale jittering).
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_semantic"
    # Training only, MaskFormer-style mappers (semantic, panoptic, instance): add SSD's photometric
    # distortion (random brightness, contrast, saturation, hue) after the crop. The LSJ mappers
    # ignore it.
    cfg.INPUT.COLOR_AUG_SSD = False
    # Training only, semantic and panoptic mappers with INPUT.CROP.ENABLED: the random crop is
    # redrawn (at most 10 times) until no category covers more than this fraction of it, ignored
    # pixels not counted (detectron2's RandomCrop_CategoryAreaConstraint; 1.0 accepts any crop).
    # Also defined by detectron2's add_deeplab_config.
    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0
    # Training only, MaskFormer-style mappers (semantic, panoptic, instance): pad the image (with
    # 128) and its targets at the bottom/right up to a multiple of this; <= 0: no padding. The
    # ADE20K and Mapillary recipes set the crop size, so every crop is padded to exactly that size
    # (Cityscapes: -1). LSJ mappers ignore it (their output is always IMAGE_SIZE square); batches
    # are padded again by the model (MODEL.MASK_FORMER.SIZE_DIVISIBILITY).
    cfg.INPUT.SIZE_DIVISIBILITY = -1
    # LSJ mappers (large-scale jittering, Ghiasi et al. 2021), training only: side of the square
    # crop, padded when the rescaled image is smaller.
    cfg.INPUT.IMAGE_SIZE = 1024
    # LSJ: the image is rescaled to fit a square of side IMAGE_SIZE * s, with s drawn uniformly
    # in [MIN_SCALE, MAX_SCALE].
    cfg.INPUT.MIN_SCALE = 0.1
    # LSJ: largest scale factor s (see MIN_SCALE).
    cfg.INPUT.MAX_SCALE = 2.0


def add_solver_config(cfg: CN) -> None:
    """Optimizer keys (``cfg.SOLVER``) beyond detectron2's and DeepLab's."""
    # Weight decay of the embedding parameters (solver/optimizer.py: nn.Embedding modules and the
    # parameters named query_feat, query_embed, level_embed, absolute_pos_embed,
    # relative_position_bias_table), instead of SOLVER.WEIGHT_DECAY.
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0
    # Optimizer (solver/optimizer.py): "SGD" (with SOLVER.MOMENTUM) or "ADAMW", case-insensitive.
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    # Learning-rate multiplier of the parameters of modules whose name contains "backbone".
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1
    # Ours (not official): mixed-precision dtype when SOLVER.AMP.ENABLED (engine/precision.py):
    # "float16" (CUDA; on CPU, training falls back to float32 with a warning) or "bfloat16" (CUDA
    # or CPU autocast).
    cfg.SOLVER.AMP.DTYPE = "float16"
    # Ours (not official): when training on a CPU, make glibc's malloc keep freed memory for the
    # rest of the process (utils/cpu_memory.py), as TEST.CPU_KEEP_FREED_MEMORY does for inference:
    # a training step frees and allocates the same large tensors every iteration, which glibc
    # otherwise unmaps and page-faults in again (R50 at 512x512, batch 2, AMD EPYC: ~0.5 million
    # page faults and ~0.5 s of system time per step; measured in README "Speed"). Applied by the
    # trainer (engine/trainer.py) before the data loader starts.
    cfg.SOLVER.CPU_KEEP_FREED_MEMORY = True


def add_test_config(cfg: CN) -> None:
    """Inference keys beside detectron2's ``cfg.TEST`` (ours, not official)."""
    cfg.TEST.AMP = CN()
    # Ours (not official): run the network of inference and evaluation under torch.autocast
    # (meta_arch/mask_former.py: MaskFormer.inference_autocast); the post-processing and the
    # deformable attention's sampling locations and softmax stay float32. Off by default: the
    # results are then those of the float32 model. bfloat16 is about 2-4x faster on CPUs with
    # bfloat16 units (AVX512-BF16, AMX) and changes PQ / AP / mIoU by well under a point on the
    # quick-start model (tools/benchmarks/bench_bf16_accuracy.py).
    cfg.TEST.AMP.ENABLED = False
    # Ours (not official): autocast dtype of TEST.AMP.ENABLED, "bfloat16" (CPU or CUDA) or
    # "float16" (CUDA only: on other devices inference stays float32, with a warning).
    cfg.TEST.AMP.DTYPE = "bfloat16"
    # Ours (not official): at the first inference of an image model on a CPU, make glibc's malloc
    # keep freed memory for the rest of the process (utils/cpu_memory.py) instead of returning
    # every large tensor to the system and page-faulting it in again on the next call: about 1.5x
    # faster inference at 800x1088 (measured, README "Speed"), same results; the process keeps its
    # peak memory. Not used by the video model (meta_arch/video_mask_former.py says why).
    cfg.TEST.CPU_KEEP_FREED_MEMORY = True


def add_mask_former_config(cfg: CN) -> None:
    """Transformer decoder, loss and inference keys (``cfg.MODEL.MASK_FORMER``)."""
    cfg.MODEL.MASK_FORMER = CN()
    mf = cfg.MODEL.MASK_FORMER
    # Transformer decoder (transformer_decoder/registry.py), by its registered name.
    mf.TRANSFORMER_DECODER_NAME = MASKED_ATTENTION_DECODER
    # Input of the transformer decoder (heads/mask_former_head.py): "multi_scale_pixel_decoder"
    # (the pixel decoder's multi-scale features: every Mask2Former recipe sets it, and it is the
    # only value MultiScaleMaskedTransformerDecoder accepts, as validate_maskformer2_config
    # checks), "transformer_encoder", "pixel_embedding" or a backbone feature name (for
    # MaskFormer-style decoders). The default "res5" is the official default.
    mf.TRANSFORMER_IN_FEATURE = "res5"
    # Also train on the DEC_LAYERS - 1 intermediate predictions (auxiliary losses, each weighted
    # like the final one; meta_arch/mask_former.py). False: only the final prediction's losses.
    mf.DEEP_SUPERVISION = True
    # Cross-entropy weight of the "no object" class (the other classes weigh 1).
    mf.NO_OBJECT_WEIGHT = 0.1
    # Weight of the classification (cross-entropy) loss, and of the class cost in the matching.
    mf.CLASS_WEIGHT = 1.0
    # Weight of the dice loss, and of the dice cost in the matching.
    mf.DICE_WEIGHT = 1.0
    # Weight of the sigmoid binary cross-entropy mask loss, and of its cost in the matching.
    mf.MASK_WEIGHT = 20.0
    # Attention heads of the transformer decoder and of the pixel decoder's transformer encoder
    # (MSDeformAttnPixelDecoder: the deformable attention heads; official checkpoints need it).
    mf.NHEADS = 8
    # Dropout of the pixel decoder's transformer encoder layers (MSDeformAttnPixelDecoder,
    # TransformerEncoderPixelDecoder). The masked-attention decoder has no dropout, as official.
    # The official recipes set 0.0.
    mf.DROPOUT = 0.1
    # Hidden width of the feed-forward networks of the transformer decoder and of
    # TransformerEncoderPixelDecoder's encoder. MSDeformAttnPixelDecoder's encoder does not read
    # it (SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD, 1024 as official).
    mf.DIM_FEEDFORWARD = 2048
    # Ignored (compatibility only; a non-zero value is warned about): the masked-attention decoder
    # has no encoder; the pixel decoder's encoder depth is SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS.
    mf.ENC_LAYERS = 0
    # Number of predictions, counted as official: one from the learnable queries before any
    # layer, then one after each of the DEC_LAYERS - 1 masked-attention layers (the last one is
    # the output).
    mf.DEC_LAYERS = 6
    # Pre-LayerNorm (True) or post-LayerNorm (False) layers in the transformer decoder and in
    # TransformerEncoderPixelDecoder's encoder (MSDeformAttnPixelDecoder's is always post-norm).
    mf.PRE_NORM = False
    # Width of the queries and of the transformer decoder's attention layers.
    mf.HIDDEN_DIM = 256
    # Number of object queries (predicted masks per image).
    mf.NUM_OBJECT_QUERIES = 100
    # Give each decoder input level a 1x1 projection even when its width already equals HIDDEN_DIM
    # (without it such levels are used as they are).
    mf.ENFORCE_INPUT_PROJ = False
    # MaskFormer pads each batch (training and inference) at the bottom/right with zeros, after
    # normalisation, to a multiple of this before the backbone; the targets are padded alike.
    # < 0: the backbone's size_divisibility (32 for Swin, 0 for ResNet); 0: pad only to the
    # largest image of the batch.
    mf.SIZE_DIVISIBILITY = 32
    # Points per mask (PointRend-style sampling, Kirillov et al. 2020): the matcher compares masks
    # on this many uniform random points, the mask and dice losses use this many
    # importance-sampled points.
    mf.TRAIN_NUM_POINTS = 112 * 112
    # Loss point sampling: draw OVERSAMPLE_RATIO * TRAIN_NUM_POINTS uniform candidates ...
    mf.OVERSAMPLE_RATIO = 3.0
    # ... keep the IMPORTANCE_SAMPLE_RATIO fraction of the points among the most uncertain
    # candidates (mask logit closest to 0), and draw the rest uniformly.
    mf.IMPORTANCE_SAMPLE_RATIO = 0.75
    # Ours (not official): registered name of the training criterion in CRITERION_REGISTRY
    # (mask2former.modeling.criterion); "SetCriterion" is the official loss.
    mf.CRITERION_NAME = "SetCriterion"

    mf.TEST = CN()
    # Inference returns "sem_seg" (per-class scores), and evaluation reports mIoU when the test set
    # has semantic ground truth.
    mf.TEST.SEMANTIC_ON = True
    # Inference returns "instances" (masks, real boxes, scores, classes), and evaluation reports
    # mask AP when the test set has instance ground truth.
    mf.TEST.INSTANCE_ON = False
    # Inference returns "panoptic_seg", and evaluation reports PQ on panoptic test sets.
    mf.TEST.PANOPTIC_ON = False
    # Panoptic: keep only queries whose best class is not "no object" and scores above this.
    mf.TEST.OBJECT_MASK_THRESHOLD = 0.0
    # Panoptic: each pixel goes to the kept query with the highest score * mask probability; a
    # query becomes a segment only if its pixels number at least this fraction of its own mask's
    # (mask probability >= 0.5).
    mf.TEST.OVERLAP_THRESHOLD = 0.0
    # Semantic inference (meta_arch/mask_former.py): True resizes the mask logits to the output
    # size (height, width) first and combines them with the class scores there; False combines
    # them at the padded input size and resizes the [K, H, W] semantic scores afterwards.
    # Treated as True whenever PANOPTIC_ON or INSTANCE_ON is set (they need resized masks).
    mf.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE = False


def add_pixel_decoder_config(cfg: CN) -> None:
    """Pixel decoder keys (``cfg.MODEL.SEM_SEG_HEAD``), besides detectron2's."""
    # Channels of the per-pixel embeddings ("mask features") of the pixel decoder, which the
    # transformer decoder's mask embeddings are dotted with.
    cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = 256
    # Transformer encoder layers of the pixel decoder (MSDeformAttnPixelDecoder: deformable encoder
    # layers; TransformerEncoderPixelDecoder: on the coarsest level); BasePixelDecoder has none.
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 0
    # Pixel decoder (pixel_decoder/registry.py), by its registered name, e.g.
    # "MSDeformAttnPixelDecoder" (Mask2Former), "BasePixelDecoder".
    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "BasePixelDecoder"
    # MSDeformAttnPixelDecoder (deformable attention, Deformable DETR, Zhu et al. 2021): the
    # backbone levels its encoder attends over; the decoder uses the 3 coarsest encoded levels.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES = ["res3", "res4", "res5"]
    # MSDeformAttnPixelDecoder: sampling points per attention head and level.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS = 4
    # Ours (not official): FFN width of the deformable encoder layers (MSDeformAttnPixelDecoder).
    # The official code hard-codes 1024 there (MODEL.MASK_FORMER.DIM_FEEDFORWARD is not read);
    # official checkpoints need 1024.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD = 1024
    # Ignored (compatibility only; a value other than MODEL.MASK_FORMER.NHEADS is warned about):
    # like the official code, the deformable encoder uses MODEL.MASK_FORMER.NHEADS heads.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS = 8


def add_swin_config(cfg: CN) -> None:
    """Swin Transformer backbone keys (``cfg.MODEL.SWIN``, Liu et al. ICCV 2021)."""
    cfg.MODEL.SWIN = CN()
    # Image size of the pretraining: sets the size of the absolute position embedding (APE only).
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
    # Attention scale (None: head_dim ** -0.5).
    cfg.MODEL.SWIN.QK_SCALE = None
    # Dropout rate after the patch embedding, the attention output projection and in the MLPs.
    cfg.MODEL.SWIN.DROP_RATE = 0.0
    # Dropout rate on the attention weights.
    cfg.MODEL.SWIN.ATTN_DROP_RATE = 0.0
    # Stochastic depth rate of the last block (linearly increasing from 0 over the blocks).
    cfg.MODEL.SWIN.DROP_PATH_RATE = 0.3
    # Add an absolute position embedding to the patch embedding.
    cfg.MODEL.SWIN.APE = False
    # LayerNorm after the patch embedding.
    cfg.MODEL.SWIN.PATCH_NORM = True
    # Stages returned by the backbone.
    cfg.MODEL.SWIN.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Gradient checkpointing of the blocks in training (saves memory, costs compute).
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
    add_test_config(cfg)
    add_mask_former_config(cfg)
    add_pixel_decoder_config(cfg)
    add_swin_config(cfg)


def default_config() -> CN:
    """Every default, unmerged and unfrozen: detectron2's, DeepLab's, Mask2Former's and the video
    keys (harmless for image configs; they let the YouTube-VIS YAML files merge). The key set of
    every config :func:`build_config` returns."""
    from .video_config import add_maskformer2_video_config

    cfg = get_cfg()
    add_maskformer2_config(cfg)
    add_maskformer2_video_config(cfg)
    return cfg


def build_config(config_file: str, opts: Sequence[str] = ()) -> CN:
    """The frozen config of every entry point (training, quick start, demo, tools, benchmarks).

    detectron2's defaults + DeepLab's + Mask2Former's, then ``config_file`` (may be empty) and the
    ``KEY VALUE`` overrides ``opts``, checked by :func:`validate_maskformer2_config`: this is the
    one place where a config is validated. ``MODEL.DEVICE`` naming CUDA becomes ``"cpu"`` when
    CUDA is not available (:func:`fall_back_to_cpu_without_cuda`, one warning). Also logs a
    warning (once per process) when the installed detectron2 is not the version this project is
    tested with.

    Raises:
        KeyError: an unknown key, naming it, where it is set (the YAML file of the ``_BASE_``
            chain, or ``opts``) and the closest existing keys.
        ValueError: naming the key and value (and where it is set), for a value of the wrong type
            or one the model cannot run with.
        FileNotFoundError: ``config_file`` does not exist.
    """
    check_detectron2_version()
    cfg = default_config()
    if config_file:
        merge_config_file(cfg, config_file)
    merge_config_opts(cfg, opts)
    fall_back_to_cpu_without_cuda(cfg)
    validate_maskformer2_config(cfg)
    cfg.freeze()
    return cfg
