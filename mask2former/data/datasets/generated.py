# Copyright (c) the mask2former authors.
"""Datasets generated on first use: write once into a folder, atomically, and reuse.

A generator writes a split into a temporary sibling folder, then a ``COMPLETE`` marker holding
the generator's parameters, then the folder is renamed into place. A folder whose marker is
missing (interrupted run) or holds other parameters (another generator version or split size) is
generated again. Concurrent processes may both generate; the first rename wins and the other's
copy is discarded.
"""

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict

__all__ = ["MARKER_NAME", "ensure_generated", "is_generated"]

logger = logging.getLogger(__name__)

MARKER_NAME = "COMPLETE"


def is_generated(directory: Path, marker: Dict[str, Any]) -> bool:
    """True when ``directory`` holds a complete copy generated with parameters ``marker``."""
    try:
        return json.loads((Path(directory) / MARKER_NAME).read_text()) == marker
    except (OSError, ValueError):
        return False


def ensure_generated(
    directory: Path, marker: Dict[str, Any], generate: Callable[[Path], None]
) -> Path:
    """Make ``directory`` hold what ``generate(folder)`` writes into an empty folder, unless a
    complete copy made with the same ``marker`` (JSON-serialisable parameters) is already there.

    Returns ``directory``.
    """
    directory = Path(directory)
    if is_generated(directory, marker):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Generating %s (%s)", directory, marker)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        generate(tmp)
        (tmp / MARKER_NAME).write_text(json.dumps(marker))
        if directory.exists() and not is_generated(directory, marker):
            shutil.rmtree(directory)
        try:
            tmp.rename(directory)
        except OSError:
            if not is_generated(directory, marker):  # another process did not win the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
