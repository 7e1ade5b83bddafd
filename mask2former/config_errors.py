# Copyright (c) the mask2former authors.
"""Merging a YAML file or ``KEY VALUE`` overrides into a config, with errors that say what to fix.

yacs (under detectron2's ``CfgNode``) reports an unknown key as ``Non-existent config key: X``
(files) or ``Non-existent key: X`` (overrides), a bad value as ``Type mismatch ...``, a missing
file or an odd override list through assertions. The functions here re-raise these naming the
key, where it was set (the file of the ``_BASE_`` chain that sets it, or the command-line
overrides) and, for an unknown key, the closest existing keys.
"""

import os
import re
from typing import Any, Dict, List, Optional, Sequence

import yaml
from detectron2.config import CfgNode

from .utils.suggestions import UnknownNameError, close_matches

__all__ = ["merge_config_file", "merge_config_opts", "unknown_key_message"]

# The key in yacs' messages for an unknown key or a value of the wrong type.
_KEY_IN_MESSAGE = re.compile(r"(Non-existent (?:config )?key|for config key): (\S+)")
# yacs' type mismatch: the types and values of the key's current and new value.
_TYPE_MISMATCH = re.compile(
    r"Type mismatch \(<class '(\w+)'> vs\. <class '(\w+)'>\) with values \((.*) vs\. (.*)\) for"
)


def _all_keys(cfg: CfgNode, prefix: str = "") -> List[str]:
    """Every leaf key of ``cfg`` as a dotted path."""
    keys = []
    for name, value in cfg.items():
        if isinstance(value, CfgNode):
            keys += _all_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def unknown_key_message(cfg: CfgNode, key: str, source: str) -> str:
    """``Unknown config key K (in SOURCE); did you mean ...?`` with the keys of ``cfg`` closest to
    ``key``: similar full paths (a misspelt name) and the same name elsewhere (a key put under
    the wrong node)."""
    keys = _all_keys(cfg)
    leaf = key.rsplit(".", 1)[-1]
    same_name = [k for k in keys if k.rsplit(".", 1)[-1] == leaf]
    suggestions = close_matches(key, keys, limit=3, cutoff=0.8)
    suggestions += [k for k in same_name if k not in suggestions]
    message = f"Unknown config key {key} ({source})"
    if suggestions:
        message += f"; did you mean {', '.join(suggestions[:5])}?"
    return message


def _has_key(content: Any, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(content, dict) or part not in content:
            return False
        content = content[part]
    return True


def _file_setting(config_file: str, key: str) -> Optional[str]:
    """The file of ``config_file``'s ``_BASE_`` chain (child first) that sets ``key``."""
    seen = set()
    path: Optional[str] = config_file
    while path and path not in seen and os.path.isfile(path):
        seen.add(path)
        with open(path) as f:
            content: Dict[str, Any] = yaml.safe_load(f) or {}
        if _has_key(content, key):
            return path
        base = content.get("_BASE_")
        if not isinstance(base, str):
            return None
        base = os.path.expanduser(base)
        path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
    return None


def _reraise(cfg: CfgNode, error: Exception, source: str, config_file: str = "") -> None:
    """Re-raise a yacs merge error about a key with the key, its source and suggestions."""
    message = str(error.args[0]) if error.args else str(error)
    match = _KEY_IN_MESSAGE.search(message)
    if match is None:
        raise error
    key = match.group(2)
    if config_file:
        source = f"set in {_file_setting(config_file, key) or config_file}"
    if match.group(1).startswith("Non-existent"):
        raise UnknownNameError(unknown_key_message(cfg, key, source)) from None
    mismatch = _TYPE_MISMATCH.search(message)
    if mismatch is not None:
        expected, given, current, value = mismatch.groups()
        message = f"expected type {expected} (value before: {current}), got {given} {value!r}"
    raise ValueError(f"Bad value for config key {key} ({source}): {message}") from None


def merge_config_file(cfg: CfgNode, config_file: str) -> None:
    """``cfg.merge_from_file(config_file)`` with clear errors.

    Raises:
        FileNotFoundError: ``config_file`` does not exist.
        KeyError: an unknown key (naming it, the file that sets it and the closest keys).
        ValueError: a value of the wrong type (naming the key and the file).
    """
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"Config file not found: {config_file!r}")
    try:
        # safe YAML only (detectron2 falls back to yaml.unsafe_load, which can run code)
        cfg.merge_from_file(config_file, allow_unsafe=False)
    except (KeyError, ValueError, AssertionError) as error:
        _reraise(cfg, error, "", config_file)


def merge_config_opts(cfg: CfgNode, opts: Sequence[str]) -> None:
    """``cfg.merge_from_list(opts)`` (``KEY VALUE`` pairs, e.g. from the command line) with
    clear errors.

    Raises:
        ValueError: an odd number of items, or a value of the wrong type (naming the key).
        KeyError: an unknown key (naming it and the closest keys).
    """
    opts = list(opts)
    if len(opts) % 2:
        raise ValueError(
            f"Config overrides must be KEY VALUE pairs; got an odd number of items: {opts}"
        )
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as error:
        _reraise(cfg, error, "in the command-line overrides")
