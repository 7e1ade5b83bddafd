# Demo inputs: expanding --input into files, and reading them a bounded number ahead of the model
# in a background thread, so that memory does not grow with the number of inputs.
import glob
import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, TypeVar

import numpy as np
from PIL import Image

from mask2former.data.bad_samples import SkippableSampleError
from mask2former.data.image_io import read_image

logger = logging.getLogger("mask2former.demo.input_stream")

Item = TypeVar("Item")


class Inputs(NamedTuple):
    """``--input`` expanded: the files in order, and ``(argument, reason)`` for each argument that
    names no file (a folder without images, a pattern matching nothing)."""

    paths: list[str]
    unmatched: list[tuple[str, str]]


def image_extensions() -> set[str]:
    """Lower-case file extensions (".jpg", ...) of every image format PIL reads."""
    return {ext.lower() for ext in Image.registered_extensions()}


def list_inputs(arguments: Sequence[str]) -> Inputs:
    """Files named by ``--input`` arguments: a file path (kept even if missing, so that reading
    reports it), a glob pattern (its matching files, sorted), or a folder (its image files by
    extension, sorted, not recursive). A file named twice is kept once."""
    paths: list[str] = []
    unmatched: list[tuple[str, str]] = []
    extensions = image_extensions()
    for argument in arguments:
        expanded = os.path.expanduser(argument)
        if os.path.isdir(expanded):
            names = sorted(os.listdir(expanded))
            found = [
                os.path.join(expanded, name)
                for name in names
                if os.path.splitext(name)[1].lower() in extensions
                and os.path.isfile(os.path.join(expanded, name))
            ]
            if len(found) < len(names):
                logger.info(
                    "%s: %d entries that are not image files (by extension) or are folders are "
                    "not inputs",
                    argument,
                    len(names) - len(found),
                )
            if not found:
                unmatched.append((argument, "folder has no image files"))
        elif any(c in expanded for c in "*?["):
            found = [p for p in sorted(glob.glob(expanded)) if not os.path.isdir(p)]
            if not found:
                unmatched.append((argument, "pattern matches no file"))
        else:
            found = [expanded]
        paths.extend(found)
    unique = list(dict.fromkeys(paths))
    if len(unique) < len(paths):
        logger.info("%d files named more than once are processed once", len(paths) - len(unique))
    return Inputs(unique, unmatched)


def read_images(
    paths: Iterable[str], image_format: str
) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
    """Yields ``(path, image, None)``, or ``(path, None, reason)`` for a file that cannot be read
    (:func:`mask2former.data.image_io.read_image`: upright, in ``image_format``)."""
    for path in paths:
        try:
            image = read_image(path, image_format)
        except SkippableSampleError as error:  # missing or unreadable, the message names it
            yield path, None, str(error)
        except Exception as error:  # one odd file must not stop the others
            yield path, None, f"cannot read it: {type(error).__name__}: {error}"
        else:
            yield path, image, None


class _Failed(NamedTuple):
    error: Exception


_END = object()


def read_ahead(items: Iterable[Item], depth: int) -> Iterator[Item]:
    """Yields ``items`` in order, producing them in a background thread at most ``depth`` items
    ahead of the consumer: the items taken from ``items`` but not yet yielded are never more than
    ``depth``. An exception raised by ``items`` is raised here; closing this generator stops the
    thread."""
    if depth < 1:
        raise ValueError(f"read-ahead depth must be >= 1, got {depth}")
    slots = threading.Semaphore(depth)
    produced: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(items)
        try:
            while True:
                slots.acquire()  # one slot per item taken and not yet yielded
                if stop.is_set():
                    return
                try:
                    item = next(iterator)
                except StopIteration:
                    produced.put(_END)
                    return
                produced.put(item)
        except Exception as error:  # re-raised in the consumer's thread
            produced.put(_Failed(error))

    thread = threading.Thread(target=produce, name="demo-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = produced.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            slots.release()
            yield item
    finally:
        stop.set()
        slots.release()  # wake the producer if it waits for a slot
        thread.join(timeout=10.0)
