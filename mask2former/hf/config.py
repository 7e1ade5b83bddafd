"""Our detectron2 config <-> a ``transformers`` ``Mask2FormerConfig``.

What converts: ``MaskFormer`` with ``MaskFormerHead``, the ``MSDeformAttnPixelDecoder`` (GroupNorm,
4 sampling points, attending over res3..res5, FPN down to ``COMMON_STRIDE``) and the
``MultiScaleMaskedTransformerDecoder`` reading the pixel decoder's multi-scale features (every
official recipe), on

* ``D2SwinTransformer`` (HF ``SwinBackbone``): patch norm on, no absolute position embedding, no
  ``QK_SCALE`` override, the four stages out (all official Swin recipes);
* detectron2's ``build_resnet_backbone`` (HF ``ResNetBackbone``): basic or bottleneck blocks
  (R18/34/50/101/152), ``NUM_GROUPS`` 1 with ``RES2_OUT_CHANNELS = 4 * WIDTH_PER_GROUP`` for
  bottlenecks, no dilation, no deformable convs, FrozenBN / BN / SyncBN; ``STRIDE_IN_1X1`` maps to
  HF's ``downsample_in_bottleneck`` (the official recipes' torchvision-style R50/R101 convert).

Anything else raises :class:`UnsupportedConfigError` naming the key. HF models take RGB pixel
values; a BGR model (``INPUT.FORMAT``) gets its first conv's input channels reversed on the way.
"""

from typing import Any, Dict, List, Sequence, Tuple

from detectron2.config import CfgNode

__all__ = [
    "UnsupportedConfigError",
    "backbone_kind",
    "check_convertible",
    "cfg_overrides_from_hf",
    "hf_config_kwargs",
]

FEATURES = ["res2", "res3", "res4", "res5"]
HF_STAGES = ["stage1", "stage2", "stage3", "stage4"]
# HF's pixel decoder hard-codes these.
ENCODER_LEVELS = ["res3", "res4", "res5"]
ENCODER_POINTS = 4
ENCODER_DIM_FEEDFORWARD = 1024
RESNET_DEPTHS = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}


class UnsupportedConfigError(ValueError):
    """The model cannot be expressed as a ``transformers`` Mask2Former (the message says why)."""


def _require(ok: bool, key: str, value: Any, requirement: str) -> None:
    if not ok:
        raise UnsupportedConfigError(
            f"{key}={value!r}: {requirement}; this model cannot be converted to/from transformers"
        )


def backbone_kind(cfg: CfgNode) -> str:
    """ "swin" or "resnet" for a convertible backbone, else :class:`UnsupportedConfigError`."""
    name = cfg.MODEL.BACKBONE.NAME
    kinds = {"D2SwinTransformer": "swin", "build_resnet_backbone": "resnet"}
    _require(name in kinds, "MODEL.BACKBONE.NAME", name, f"must be one of {sorted(kinds)}")
    return kinds[name]


def _check_swin(swin: CfgNode) -> None:
    _require(not swin.APE, "MODEL.SWIN.APE", swin.APE, "HF Swin backbones have no absolute pos.")
    _require(swin.PATCH_NORM, "MODEL.SWIN.PATCH_NORM", swin.PATCH_NORM, "HF Swin always norms")
    _require(swin.QK_SCALE is None, "MODEL.SWIN.QK_SCALE", swin.QK_SCALE, "HF uses head_dim^-0.5")
    _require(
        list(swin.OUT_FEATURES) == FEATURES,
        "MODEL.SWIN.OUT_FEATURES",
        swin.OUT_FEATURES,
        f"must be {FEATURES}",
    )
    _require(len(swin.DEPTHS) == 4, "MODEL.SWIN.DEPTHS", swin.DEPTHS, "4 stages")


def _check_resnet(res: CfgNode) -> None:
    _require(
        res.DEPTH in RESNET_DEPTHS,
        "MODEL.RESNETS.DEPTH",
        res.DEPTH,
        f"must be one of {sorted(RESNET_DEPTHS)}",
    )
    _require(
        res.NORM in ("FrozenBN", "BN", "SyncBN"),
        "MODEL.RESNETS.NORM",
        res.NORM,
        "HF ResNet uses BatchNorm",
    )
    _require(res.NUM_GROUPS == 1, "MODEL.RESNETS.NUM_GROUPS", res.NUM_GROUPS, "HF has no groups")
    _require(
        res.RES5_DILATION == 1,
        "MODEL.RESNETS.RES5_DILATION",
        res.RES5_DILATION,
        "HF ResNet has no dilation",
    )
    _require(
        not any(res.DEFORM_ON_PER_STAGE),
        "MODEL.RESNETS.DEFORM_ON_PER_STAGE",
        res.DEFORM_ON_PER_STAGE,
        "HF ResNet has no deformable convs",
    )
    _require(
        list(res.OUT_FEATURES) == FEATURES,
        "MODEL.RESNETS.OUT_FEATURES",
        res.OUT_FEATURES,
        f"must be {FEATURES}",
    )
    if res.DEPTH >= 50:
        _require(
            res.RES2_OUT_CHANNELS == 4 * res.WIDTH_PER_GROUP,
            "MODEL.RESNETS.WIDTH_PER_GROUP",
            res.WIDTH_PER_GROUP,
            "HF bottlenecks are out_channels / 4 wide",
        )


def check_convertible(cfg: CfgNode) -> str:
    """Raises :class:`UnsupportedConfigError` unless ``cfg`` converts; returns the backbone kind."""
    model, head, mf = cfg.MODEL, cfg.MODEL.SEM_SEG_HEAD, cfg.MODEL.MASK_FORMER
    _require(
        model.META_ARCHITECTURE == "MaskFormer",
        "MODEL.META_ARCHITECTURE",
        model.META_ARCHITECTURE,
        "must be MaskFormer",
    )
    _require(
        head.NAME == "MaskFormerHead",
        "MODEL.SEM_SEG_HEAD.NAME",
        head.NAME,
        "must be MaskFormerHead",
    )
    _require(
        head.PIXEL_DECODER_NAME == "MSDeformAttnPixelDecoder",
        "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME",
        head.PIXEL_DECODER_NAME,
        "must be MSDeformAttnPixelDecoder",
    )
    _require(
        mf.TRANSFORMER_DECODER_NAME == "MultiScaleMaskedTransformerDecoder",
        "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME",
        mf.TRANSFORMER_DECODER_NAME,
        "must be MultiScaleMaskedTransformerDecoder",
    )
    _require(
        mf.TRANSFORMER_IN_FEATURE == "multi_scale_pixel_decoder",
        "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE",
        mf.TRANSFORMER_IN_FEATURE,
        "must be multi_scale_pixel_decoder",
    )
    _require(head.NORM == "GN", "MODEL.SEM_SEG_HEAD.NORM", head.NORM, "HF uses GroupNorm(32)")
    _require(
        list(head.IN_FEATURES) == FEATURES,
        "MODEL.SEM_SEG_HEAD.IN_FEATURES",
        head.IN_FEATURES,
        f"must be {FEATURES}",
    )
    _require(
        list(head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES) == ENCODER_LEVELS,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES",
        head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES,
        f"must be {ENCODER_LEVELS}",
    )
    _require(
        head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS == ENCODER_POINTS,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS",
        head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS,
        f"HF uses {ENCODER_POINTS}",
    )
    _require(cfg.INPUT.FORMAT in ("RGB", "BGR"), "INPUT.FORMAT", cfg.INPUT.FORMAT, "RGB or BGR")
    kind = backbone_kind(cfg)
    if kind == "swin":
        _check_swin(model.SWIN)
    else:
        _check_resnet(model.RESNETS)
    return kind


def _backbone_kwargs(cfg: CfgNode, kind: str) -> Tuple[str, Dict[str, Any]]:
    if kind == "swin":
        swin = cfg.MODEL.SWIN
        return "swin", {
            "image_size": swin.PRETRAIN_IMG_SIZE,
            "patch_size": swin.PATCH_SIZE,
            "embed_dim": swin.EMBED_DIM,
            "depths": list(swin.DEPTHS),
            "num_heads": list(swin.NUM_HEADS),
            "window_size": swin.WINDOW_SIZE,
            "mlp_ratio": swin.MLP_RATIO,
            "qkv_bias": swin.QKV_BIAS,
            "hidden_dropout_prob": swin.DROP_RATE,
            "attention_probs_dropout_prob": swin.ATTN_DROP_RATE,
            "drop_path_rate": swin.DROP_PATH_RATE,
            "use_absolute_embeddings": False,
            "out_features": HF_STAGES,
        }
    res = cfg.MODEL.RESNETS
    width = res.RES2_OUT_CHANNELS
    return "resnet", {
        "embedding_size": res.STEM_OUT_CHANNELS,
        "hidden_sizes": [width * 2**i for i in range(4)],
        "depths": RESNET_DEPTHS[res.DEPTH],
        "layer_type": "bottleneck" if res.DEPTH >= 50 else "basic",
        "downsample_in_bottleneck": bool(res.STRIDE_IN_1X1),
        "out_features": HF_STAGES,
    }


def hf_config_kwargs(cfg: CfgNode, class_names: Sequence[str]) -> Dict[str, Any]:
    """Keyword arguments of ``transformers.Mask2FormerConfig`` for ``cfg``; ``backbone_config`` is
    ``(model_type, kwargs)`` for ``transformers.AutoConfig.for_model``."""
    kind = check_convertible(cfg)
    head, mf = cfg.MODEL.SEM_SEG_HEAD, cfg.MODEL.MASK_FORMER
    if len(class_names) != head.NUM_CLASSES:
        raise ValueError(
            f"{len(class_names)} class names for MODEL.SEM_SEG_HEAD.NUM_CLASSES={head.NUM_CLASSES}"
        )
    return {
        "backbone_config": _backbone_kwargs(cfg, kind),
        "feature_size": head.CONVS_DIM,
        "mask_feature_size": head.MASK_DIM,
        "hidden_dim": mf.HIDDEN_DIM,
        "encoder_feedforward_dim": ENCODER_DIM_FEEDFORWARD,
        "encoder_layers": head.TRANSFORMER_ENC_LAYERS,
        "decoder_layers": mf.DEC_LAYERS,
        "num_attention_heads": mf.NHEADS,
        "dropout": mf.DROPOUT,
        "dim_feedforward": mf.DIM_FEEDFORWARD,
        "pre_norm": mf.PRE_NORM,
        "enforce_input_projection": mf.ENFORCE_INPUT_PROJ,
        "common_stride": head.COMMON_STRIDE,
        "ignore_value": head.IGNORE_VALUE,
        "num_queries": mf.NUM_OBJECT_QUERIES,
        "no_object_weight": mf.NO_OBJECT_WEIGHT,
        "class_weight": mf.CLASS_WEIGHT,
        "mask_weight": mf.MASK_WEIGHT,
        "dice_weight": mf.DICE_WEIGHT,
        "train_num_points": mf.TRAIN_NUM_POINTS,
        "oversample_ratio": mf.OVERSAMPLE_RATIO,
        "importance_sample_ratio": mf.IMPORTANCE_SAMPLE_RATIO,
        "use_auxiliary_loss": mf.DEEP_SUPERVISION,
        "feature_strides": [4, 8, 16, 32],
        "id2label": dict(enumerate(class_names)),
        "label2id": {name: i for i, name in enumerate(class_names)},
    }


def _backbone_overrides(backbone: Any) -> Dict[str, Any]:
    kind = backbone.model_type
    stages = list(getattr(backbone, "out_features", HF_STAGES))
    _require(stages == HF_STAGES, "backbone_config.out_features", stages, f"must be {HF_STAGES}")
    if kind == "swin":
        _require(
            backbone.hidden_act == "gelu",
            "backbone_config.hidden_act",
            backbone.hidden_act,
            "ours uses GELU",
        )
        _require(
            not backbone.use_absolute_embeddings,
            "backbone_config.use_absolute_embeddings",
            backbone.use_absolute_embeddings,
            "ours has none in convertible form",
        )
        _require(
            abs(backbone.layer_norm_eps - 1e-5) < 1e-12,
            "backbone_config.layer_norm_eps",
            backbone.layer_norm_eps,
            "ours uses 1e-5",
        )
        return {
            "MODEL.BACKBONE.NAME": "D2SwinTransformer",
            "MODEL.SWIN.PRETRAIN_IMG_SIZE": backbone.image_size,
            "MODEL.SWIN.PATCH_SIZE": backbone.patch_size,
            "MODEL.SWIN.EMBED_DIM": backbone.embed_dim,
            "MODEL.SWIN.DEPTHS": list(backbone.depths),
            "MODEL.SWIN.NUM_HEADS": list(backbone.num_heads),
            "MODEL.SWIN.WINDOW_SIZE": backbone.window_size,
            "MODEL.SWIN.MLP_RATIO": float(backbone.mlp_ratio),
            "MODEL.SWIN.QKV_BIAS": backbone.qkv_bias,
            "MODEL.SWIN.QK_SCALE": None,
            "MODEL.SWIN.DROP_RATE": backbone.hidden_dropout_prob,
            "MODEL.SWIN.ATTN_DROP_RATE": backbone.attention_probs_dropout_prob,
            "MODEL.SWIN.DROP_PATH_RATE": backbone.drop_path_rate,
            "MODEL.SWIN.APE": False,
            "MODEL.SWIN.PATCH_NORM": True,
            "MODEL.SWIN.OUT_FEATURES": FEATURES,
        }
    _require(kind == "resnet", "backbone_config.model_type", kind, "must be swin or resnet")
    _require(
        backbone.hidden_act == "relu",
        "backbone_config.hidden_act",
        backbone.hidden_act,
        "detectron2 ResNets use ReLU",
    )
    _require(
        not backbone.downsample_in_first_stage,
        "backbone_config.downsample_in_first_stage",
        True,
        "detectron2's res2 does not downsample",
    )
    width = backbone.hidden_sizes[0]
    _require(
        list(backbone.hidden_sizes) == [width * 2**i for i in range(4)],
        "backbone_config.hidden_sizes",
        backbone.hidden_sizes,
        "must double per stage",
    )
    bottleneck = backbone.layer_type == "bottleneck"
    depths = {
        d: v for d, v in RESNET_DEPTHS.items() if (d >= 50) == bottleneck
    }  # basic: 18/34, bottleneck: 50/101/152
    matches = [d for d, v in depths.items() if v == list(backbone.depths)]
    _require(
        bool(matches),
        "backbone_config.depths",
        backbone.depths,
        f"must be one of {list(depths.values())}",
    )
    return {
        "MODEL.BACKBONE.NAME": "build_resnet_backbone",
        "MODEL.RESNETS.DEPTH": matches[0],
        "MODEL.RESNETS.STEM_OUT_CHANNELS": backbone.embedding_size,
        "MODEL.RESNETS.RES2_OUT_CHANNELS": width,
        "MODEL.RESNETS.WIDTH_PER_GROUP": width // 4 if bottleneck else 64,
        "MODEL.RESNETS.NUM_GROUPS": 1,
        "MODEL.RESNETS.STRIDE_IN_1X1": bool(backbone.downsample_in_bottleneck),
        "MODEL.RESNETS.NORM": "FrozenBN",
        "MODEL.RESNETS.RES5_DILATION": 1,
        "MODEL.RESNETS.DEFORM_ON_PER_STAGE": [False] * 4,
        "MODEL.RESNETS.OUT_FEATURES": FEATURES,
    }


def cfg_overrides_from_hf(hf_config: Any) -> Dict[str, Any]:
    """Every architecture key of our config, from a ``Mask2FormerConfig`` (``KEY: value``)."""
    _require(
        hf_config.encoder_feedforward_dim == ENCODER_DIM_FEEDFORWARD,
        "encoder_feedforward_dim",
        hf_config.encoder_feedforward_dim,
        f"ours is fixed at {ENCODER_DIM_FEEDFORWARD}",
    )
    _require(
        hf_config.activation_function == "relu",
        "activation_function",
        hf_config.activation_function,
        "ours uses ReLU",
    )
    _require(
        list(hf_config.feature_strides) == [4, 8, 16, 32],
        "feature_strides",
        hf_config.feature_strides,
        "must be [4, 8, 16, 32]",
    )
    overrides: Dict[str, Any] = {
        "MODEL.META_ARCHITECTURE": "MaskFormer",
        "MODEL.SEM_SEG_HEAD.NAME": "MaskFormerHead",
        "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "MSDeformAttnPixelDecoder",
        "MODEL.SEM_SEG_HEAD.IN_FEATURES": FEATURES,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES": ENCODER_LEVELS,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS": ENCODER_POINTS,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS": hf_config.num_attention_heads,
        "MODEL.SEM_SEG_HEAD.NORM": "GN",
        "MODEL.SEM_SEG_HEAD.COMMON_STRIDE": hf_config.common_stride,
        "MODEL.SEM_SEG_HEAD.CONVS_DIM": hf_config.feature_size,
        "MODEL.SEM_SEG_HEAD.MASK_DIM": hf_config.mask_feature_size,
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": hf_config.num_labels,
        "MODEL.SEM_SEG_HEAD.IGNORE_VALUE": hf_config.ignore_value,
        "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": hf_config.encoder_layers,
        "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "MultiScaleMaskedTransformerDecoder",
        "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": "multi_scale_pixel_decoder",
        "MODEL.MASK_FORMER.HIDDEN_DIM": hf_config.hidden_dim,
        "MODEL.MASK_FORMER.NHEADS": hf_config.num_attention_heads,
        "MODEL.MASK_FORMER.DROPOUT": float(hf_config.dropout),
        "MODEL.MASK_FORMER.DIM_FEEDFORWARD": hf_config.dim_feedforward,
        "MODEL.MASK_FORMER.DEC_LAYERS": hf_config.decoder_layers,
        "MODEL.MASK_FORMER.PRE_NORM": hf_config.pre_norm,
        "MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ": hf_config.enforce_input_projection,
        "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": hf_config.num_queries,
        "MODEL.MASK_FORMER.NO_OBJECT_WEIGHT": hf_config.no_object_weight,
        "MODEL.MASK_FORMER.CLASS_WEIGHT": hf_config.class_weight,
        "MODEL.MASK_FORMER.MASK_WEIGHT": hf_config.mask_weight,
        "MODEL.MASK_FORMER.DICE_WEIGHT": hf_config.dice_weight,
        "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": hf_config.train_num_points,
        "MODEL.MASK_FORMER.OVERSAMPLE_RATIO": hf_config.oversample_ratio,
        "MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO": hf_config.importance_sample_ratio,
        "MODEL.MASK_FORMER.DEEP_SUPERVISION": hf_config.use_auxiliary_loss,
        "INPUT.FORMAT": "RGB",
    }
    overrides.update(_backbone_overrides(hf_config.backbone_config))
    return overrides


def class_names_from_hf(hf_config: Any) -> List[str]:
    """``id2label`` as a list in id order."""
    id2label = {int(k): v for k, v in hf_config.id2label.items()}
    return [id2label[i] for i in range(hf_config.num_labels)]
