"""Reading published ImageNet checkpoints and writing detectron2 model-zoo pickles.

A published checkpoint is a ``.pth``/``.pt``/``.bin`` file written by ``torch.save`` (a state dict,
or a dict holding it under ``"model"`` or ``"state_dict"``, as the Swin authors and many training
scripts do) or a ``.safetensors`` file (the format timm publishes). The output is the pickle that
detectron2's ``DetectionCheckpointer`` reads from ``MODEL.WEIGHTS`` (the format of detectron2's
``tools/convert-torchvision-to-d2.py`` and of the official Mask2Former Swin converter):
``{"model": {name: numpy array}, "__author__": str, "matching_heuristics": True}``; the matching
heuristics let the backbone-only names (``res2.0.conv1.weight``) find their place in the full model
(``backbone.res2.0.conv1.weight``).
"""

import logging
import pickle
from pathlib import Path
from typing import Dict, Mapping, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["ConversionError", "load_published_state_dict", "save_d2_pickle"]

logger = logging.getLogger(__name__)

# Keys under which training scripts nest the state dict; tried in this order.
_NESTING_KEYS = ("model", "state_dict", "model_state", "module")


class ConversionError(ValueError):
    """A checkpoint cannot be converted; the message names the key or value at fault."""


def _unwrap(obj: object, path: Path) -> Dict[str, Tensor]:
    """The state dict inside a loaded checkpoint, with a DataParallel ``module.`` prefix removed."""
    while isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _NESTING_KEYS if k in obj), None)
        if inner is None:
            raise ConversionError(
                f"{path}: no state dict found (top-level keys: {sorted(map(str, obj))[:10]})"
            )
        obj = inner
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise ConversionError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        state[str(key)] = value
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_published_state_dict(
    path: Union[str, Path], trust_pickle: bool = False
) -> Dict[str, Tensor]:
    """Reads a published checkpoint (see the module docstring) into a ``{name: tensor}`` dict.

    ``.pth`` files are read with ``torch.load(weights_only=True)``, which refuses files holding
    arbitrary Python objects (some training checkpoints store their config object); pass
    ``trust_pickle=True`` to unpickle such a file, only for files from a source you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise ConversionError(
                f"{path}: reading .safetensors needs `pip install safetensors`"
            ) from e
        return _unwrap(load_file(str(path), device="cpu"), path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        # torch's message is long; its "WeightsUnpickler error: Unsupported global: X" line names
        # the object
        lines = [line for line in str(e).splitlines() if "Unsupported" in line] or ["?"]
        raise ConversionError(
            f"{path} holds Python objects besides tensors and was not unpickled ({lines[0]}). "
            "If you trust its source, run again with --trust-pickle."
        ) from e
    except (RuntimeError, EOFError) as e:  # not a torch.save file (e.g. truncated download)
        raise ConversionError(f"{path}: not a readable PyTorch checkpoint ({e})") from e
    return _unwrap(obj, path)


def save_d2_pickle(state: Mapping[str, Tensor], path: Union[str, Path], author: str) -> None:
    """Writes ``state`` as a detectron2 model-zoo pickle (numpy arrays, matching heuristics on)."""
    model: Dict[str, np.ndarray] = {
        name: value.detach().cpu().numpy() for name, value in state.items()
    }
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": author, "matching_heuristics": True}, f)
    logger.info("Wrote %d tensors to %s", len(model), path)
