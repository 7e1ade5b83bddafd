# Copyright (c) the mask2former authors.
"""Reading image files strictly: fully decoded, upright, in the model's channel format.

detectron2's ``read_image`` (``detectron2.data.detection_utils``) applies the EXIF orientation and
converts to a format, but decodes lazily: a corrupt PNG can decode to garbage without an error,
and a truncated file passes when ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set (some libraries
set it at import). :func:`read_image` here forces a full decode with truncation checks on, checks
PNG chunk checksums, and turns 16-bit and float images into 8 bits by their range instead of
clipping them; every failure is an :class:`ImageReadError` naming the file and what is wrong.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
import zlib

import numpy as np
from detectron2.data.detection_utils import convert_PIL_to_numpy
from detectron2.utils.file_io import PathManager
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = ["ImageReadError", "read_image", "to_8bit_rgb"]

logger = logging.getLogger(__name__)

# What PIL raises on corrupt data besides OSError: bad chunk structure (SyntaxError), short
# reads in headers (struct.error, EOFError, IndexError), bad tags or parameters (KeyError,
# ValueError, TypeError), unsupported variants (NotImplementedError), bad compressed data
# (zlib.error) and images too large to be anything but an attack.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    NotImplementedError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)
# PIL's truncation switch is a module global: held while one of our decodes runs.
_STRICT_DECODE = threading.Lock()


class ImageReadError(ValueError):
    """An image file that cannot be read; ``str()`` is ``"<path>: <what is wrong>"``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def to_8bit_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of any PIL image.

    16-bit integer images (``I;16*``, and ``I`` as PIL opens 16-bit PNGs) are scaled from
    0..65535 to 0..255 (PIL's own conversion clips them at 255); float images (``F``) in 0..1 are
    scaled to 0..255, otherwise clipped. CMYK, palette, grayscale and alpha images use PIL's
    conversion (alpha is dropped, as detectron2's ``read_image`` does).
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.float64) / 257.0  # [H, W], 65535 -> 255
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        values = np.nan_to_num(values)
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _decode(data: bytes) -> Image.Image:
    """Decode every pixel of ``data``; PNG chunk checksums are verified first."""
    image = Image.open(io.BytesIO(data))
    if image.format == "PNG":
        image.verify()  # chunk CRCs: a flipped byte in IDAT can still inflate to garbage
        image = Image.open(io.BytesIO(data))
    with _STRICT_DECODE:
        lenient = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            image.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    return image


def read_image(path: str, format: str = "BGR") -> np.ndarray:
    """Read an image file as detectron2's ``read_image`` does, but strictly.

    Args:
        path: a file path (or any path detectron2's ``PathManager`` opens).
        format: ``"BGR"``, ``"RGB"``, ``"L"`` or another format of detectron2's
            ``convert_PIL_to_numpy`` (the model's ``INPUT.FORMAT``).

    Returns:
        [H, W, C] uint8 array (C = 3, or 1 for ``"L"``), rotated upright by its EXIF orientation.

    Raises:
        ImageReadError: naming ``path``, when the file is missing, empty, not an image, truncated
            or corrupt.
    """
    try:
        with PathManager.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory, not an image file") from None
    except OSError as e:
        raise ImageReadError(path, f"cannot open the file ({e.strerror or e})") from e
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        image = _decode(data)
    except UnidentifiedImageError:
        kind = os.path.splitext(path)[1] or "no extension"
        raise ImageReadError(
            path, f"not an image PIL can read ({kind}, {len(data)} bytes, starts {data[:8]!r})"
        ) from None
    except _DECODE_ERRORS as e:
        raise ImageReadError(path, f"corrupt or truncated image: {type(e).__name__}: {e}") from e
    try:
        image = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as e:  # as detectron2: an unreadable EXIF block leaves the image as is
        logger.warning("%s: unreadable EXIF orientation (%s); using the image as stored", path, e)
    try:
        return convert_PIL_to_numpy(to_8bit_rgb(image), format)
    except _DECODE_ERRORS as e:
        raise ImageReadError(path, f"cannot convert {image.mode} pixels to {format}: {e}") from e
