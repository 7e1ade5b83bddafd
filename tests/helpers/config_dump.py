"""Comparing configs key by key, as flat ``{"A.B.C": value}`` dicts that compare like YAML."""

from typing import Any, Dict, Set

from detectron2.config import CfgNode

# Keys this project adds on top of the official image keys (each commented "Ours" in config.py).
OUR_IMAGE_KEYS: Set[str] = {
    "SOLVER.AMP.DTYPE",
    "TEST.AMP.ENABLED",
    "TEST.AMP.DTYPE",
    "TEST.CPU_KEEP_FREED_MEMORY",
    "SOLVER.CPU_KEEP_FREED_MEMORY",
    "MODEL.MASK_FORMER.CRITERION_NAME",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD",
}
# Keys this project adds on top of the official video keys (video_config.py).
OUR_VIDEO_KEYS: Set[str] = {
    "MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE",
    "MODEL.MASK_FORMER.TEST.WINDOW_SIZE",
}


def plain(value: Any) -> Any:
    """Tuples become lists and nodes become dicts, recursively, so values compare like YAML."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"A": {"B": 1}}`` -> ``{"A.B": 1}`` (values made :func:`plain`)."""
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = plain(value)
    return flat


def get_key(cfg: CfgNode, dotted: str) -> Any:
    """The value of ``"A.B.C"`` in ``cfg``, made :func:`plain`."""
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return plain(node)
