"""Our checkpoints <-> ``transformers`` ``Mask2FormerForUniversalSegmentation`` checkpoints.

``to_hf`` takes a config and a state dict (any format ``DetectionCheckpointer`` reads: our ``.pth``,
an official ``.pkl``, a plain dict; see :func:`load_weights`) and returns the HF model, whose
``config.json`` holds the label names and, under ``mask2former_detectron2_config``, our full config
(so the way back restores it exactly). ``from_hf`` returns our config and state dict.
"""

import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from torch import Tensor

from ..config import default_config
from ..config_errors import merge_config_file
from .config import (
    UnsupportedConfigError,
    cfg_overrides_from_hf,
    check_convertible,
    class_names_from_hf,
    hf_config_kwargs,
)
from .state_dict import MappingError, from_hf_state_dict, to_hf_state_dict

try:
    import transformers
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "mask2former.hf needs transformers>=5: pip install -e .[hf] (or pip install transformers)"
    ) from e

__all__ = [
    "EMBEDDED_CONFIG_KEY",
    "class_names_for",
    "from_hf",
    "load_weights",
    "query_logits",
    "to_hf",
]

logger = logging.getLogger(__name__)

# config.json attribute holding our config (YAML text), for an exact way back.
EMBEDDED_CONFIG_KEY = "mask2former_detectron2_config"
# Buffers our models rebuild from the config; a checkpoint may lack them.
_DERIVED_BUFFERS = ("relative_position_index", "criterion.empty_weight")
# The HF Swin model's final LayerNorm, which the backbone never uses.
_HF_UNUSED = (
    "encoder.swin.layernorm.weight",
    "encoder.swin.layernorm.bias",
)
_STEM_CONVS = ("backbone.patch_embed.proj.weight", "backbone.stem.conv1.weight")


class _RecordingCheckpointer(DetectionCheckpointer):
    """Keeps the incompatible keys that ``load`` only logs."""

    def _load_model(self, checkpoint: Any) -> Any:
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


def load_weights(cfg: CfgNode, weights: str) -> Dict[str, Tensor]:
    """Our model's full state dict after loading ``weights`` into a model built from ``cfg``.

    Raises:
        FileNotFoundError: ``weights`` does not exist.
        ValueError: the checkpoint misses keys of the model, has extra ones or wrong shapes.
    """
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file {weights!r} does not exist")
    model = build_model(cfg).eval()
    checkpointer = _RecordingCheckpointer(model)
    checkpointer.load(weights)
    incompatible = checkpointer.incompatible
    missing = [k for k in incompatible.missing_keys if not k.endswith(_DERIVED_BUFFERS)]
    problems = {
        "missing": missing,
        "unexpected": list(incompatible.unexpected_keys),
        "wrong shape": [k for k, *_ in incompatible.incorrect_shapes],
    }
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise ValueError(
            f"{weights} does not fit the config: "
            + "; ".join(f"{len(v)} {k} keys, e.g. {v[:5]}" for k, v in problems.items())
        )
    return model.state_dict()


def class_names_for(cfg: CfgNode) -> List[str]:
    """Label names of ``cfg.DATASETS.TRAIN[0]``: ``stuff_classes`` (all classes of a panoptic or
    semantic dataset), else ``thing_classes``, whichever has ``NUM_CLASSES`` entries."""
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    name = cfg.DATASETS.TRAIN[0] if cfg.DATASETS.TRAIN else None
    meta = MetadataCatalog.get(name) if name else None
    for attr in ("stuff_classes", "thing_classes"):
        names = list(getattr(meta, attr, []) or []) if meta else []
        if len(names) == num_classes:
            return names
    raise ValueError(
        f"dataset {name!r} (DATASETS.TRAIN[0]) has no stuff_classes/thing_classes with "
        f"{num_classes} names (MODEL.SEM_SEG_HEAD.NUM_CLASSES); register it, or pass --class-names"
    )


def _flip_input_channels(state: Dict[str, Tensor]) -> None:
    """Reverse the input channels of the first conv (an RGB <-> BGR model)."""
    for key in _STEM_CONVS:
        if key in state:
            state[key] = state[key].flip(1)


def to_hf(cfg: CfgNode, state_dict: Mapping[str, Tensor], class_names: Sequence[str]) -> Any:
    """A ``Mask2FormerForUniversalSegmentation`` with our weights (loaded strictly)."""
    kind = check_convertible(cfg)
    kwargs = hf_config_kwargs(cfg, class_names)
    model_type, backbone_kwargs = kwargs.pop("backbone_config")
    hf_config = transformers.Mask2FormerConfig(
        backbone_config=transformers.AutoConfig.for_model(model_type, **backbone_kwargs),
        **kwargs,
        **{EMBEDDED_CONFIG_KEY: cfg.dump()},
    )
    state = dict(state_dict)
    if cfg.INPUT.FORMAT == "BGR":
        _flip_input_channels(state)
    hf_state = to_hf_state_dict(state, kind, ignore=("relative_position_index",))
    model = transformers.Mask2FormerForUniversalSegmentation(hf_config).eval()
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in hf_state and key.endswith(_HF_UNUSED):
            hf_state[key] = torch.ones_like(value) if key.endswith("weight") else value.zero_()
        elif key not in hf_state and key.endswith("num_batches_tracked"):  # our FrozenBN has none
            hf_state[key] = torch.zeros_like(value)
    if "criterion.empty_weight" not in hf_state:
        hf_state["criterion.empty_weight"] = expected["criterion.empty_weight"]
    model.load_state_dict(hf_state, strict=True)
    return model


def _dataset_for_labels(class_names: Sequence[str]) -> Optional[str]:
    """A registered dataset whose label names are ``class_names`` (panoptic ones first)."""
    names = sorted(DatasetCatalog.list(), key=lambda n: ("panoptic" not in n, "train" not in n, n))
    for name in names:
        meta = MetadataCatalog.get(name)
        for attr in ("stuff_classes", "thing_classes"):
            if list(getattr(meta, attr, []) or []) == list(class_names):
                return name
    return None


def _base_cfg(hf_model: Any, base_config: Optional[str]) -> CfgNode:
    cfg = default_config()
    embedded = getattr(hf_model.config, EMBEDDED_CONFIG_KEY, None)
    if base_config:
        merge_config_file(cfg, base_config)  # safe YAML, errors naming the key and file
    elif embedded:
        cfg.merge_from_other_cfg(CfgNode.load_cfg(embedded))
    else:
        labels = class_names_from_hf(hf_model.config)
        dataset = _dataset_for_labels(labels)
        if dataset is None:
            raise ValueError(
                f"the HF config's {len(labels)} labels match no registered dataset and it "
                "carries no mask2former config: pass a base config (--base-config) whose "
                "DATASETS give the label names and thing classes"
            )
        logger.info("Labels match dataset %s: using it for DATASETS.TRAIN/TEST", dataset)
        cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (dataset,), (dataset,)
    return cfg


def from_hf(
    hf_model: Any, base_config: Optional[str] = None, preprocessor: Optional[Any] = None
) -> Tuple[CfgNode, Dict[str, Tensor]]:
    """Our config and state dict for a ``Mask2FormerForUniversalSegmentation``.

    The config starts from ``base_config`` if given, else the config embedded by :func:`to_hf`,
    else our defaults with the registered dataset whose label names match; every architecture
    key then comes from the HF config. Without an embedded config, ``preprocessor`` (the
    checkpoint's ``Mask2FormerImageProcessor``) gives ``PIXEL_MEAN/STD`` and the test sizes.
    """
    cfg = _base_cfg(hf_model, base_config)
    overrides = cfg_overrides_from_hf(hf_model.config)
    if getattr(hf_model.config, EMBEDDED_CONFIG_KEY, None) or base_config:
        overrides.pop("INPUT.FORMAT")  # keep the base's channel order (weights follow it below)
    elif preprocessor is not None:
        overrides["MODEL.PIXEL_MEAN"] = [255.0 * v for v in preprocessor.image_mean]
        overrides["MODEL.PIXEL_STD"] = [255.0 * v for v in preprocessor.image_std]
        size = preprocessor.size
        if size.get("shortest_edge"):
            overrides["INPUT.MIN_SIZE_TEST"] = size["shortest_edge"]
        if size.get("longest_edge"):
            overrides["INPUT.MAX_SIZE_TEST"] = size["longest_edge"]
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    cfg.MODEL.WEIGHTS = ""
    kind = check_convertible(cfg)
    template_cfg = cfg.clone()
    template_cfg.MODEL.DEVICE = "cpu"
    template = build_model(template_cfg).state_dict()
    state = from_hf_state_dict(hf_model.state_dict(), kind, ignore=_HF_UNUSED)
    extra = [k for k in state if k not in template and not k.endswith("num_batches_tracked")]
    missing = [k for k in template if k not in state and not k.endswith(_DERIVED_BUFFERS[:1])]
    if extra or missing:
        raise MappingError(
            f"converted keys do not fit the model: extra {extra[:5]}, missing {missing[:5]}"
        )
    state = {k: state.get(k, template[k]) for k in template}
    if cfg.INPUT.FORMAT == "BGR":
        _flip_input_channels(state)
    return cfg, state


def query_logits(model: Any, pixel_values: Tensor) -> Tuple[Tensor, Tensor]:
    """What the conversion preserves: the class logits [B, Q, K+1] and mask logits
    [B, Q, H/4, W/4] of our ``MaskFormer`` (backbone and head) or of a transformers
    ``Mask2FormerForUniversalSegmentation``, on normalised ``pixel_values`` [B, 3, H, W], without
    gradients."""
    with torch.no_grad():
        if isinstance(model, transformers.Mask2FormerForUniversalSegmentation):
            out = model(pixel_values=pixel_values)
            return out.class_queries_logits, out.masks_queries_logits
        out = model.sem_seg_head(model.backbone(pixel_values))
        return out["pred_logits"], out["pred_masks"]


__all__ += ["UnsupportedConfigError", "MappingError"]
