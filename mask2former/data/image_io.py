# Copyright (c) the mask2former authors.
"""Reading images and label maps, strictly.

Same results as detectron2's ``detection_utils.read_image`` (EXIF orientation applied, so images
are upright as COCO annotations expect; the same ``format`` values) for the images it reads
right, with these differences:

- the file is decoded completely while it is read (PIL decodes lazily), with PIL's tolerance of
  truncated files (``ImageFile.LOAD_TRUNCATED_IMAGES``, which some libraries switch on at import)
  held off during the decode, and PNG chunk checksums verified (a flipped byte in the pixel data
  can inflate to wrong pixels without an error): a missing file is a
  :class:`~mask2former.data.bad_samples.MissingFileError`, an empty, truncated, corrupt or
  non-image file an :class:`~mask2former.data.bad_samples.UnreadableFileError`, both naming the
  file (PIL's own errors do not);
- colour reading (``format`` given) of 16-bit (and 32-bit integer) grayscale images scales their
  values to 8 bits (PIL's conversion clips them at 255, turning most pixels white); CMYK, RGBA /
  LA (alpha dropped), palette and 1-bit images go through PIL's conversion, as in detectron2;
  float images are refused;
- label maps (``format=None``) are returned with their stored values: uint8 or uint16 labels,
  palette indices for palette PNGs.
"""

import io
import logging
import struct
import threading
import zlib
from typing import Any, Dict, Optional, Tuple

import numpy as np
from detectron2.data.detection_utils import SizeMismatchError, convert_PIL_to_numpy
from detectron2.utils.file_io import PathManager
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .bad_samples import MissingFileError, UnreadableFileError

__all__ = ["check_image_size", "read_image"]

logger = logging.getLogger(__name__)

# PIL modes of integer grayscale images wider than 8 bits.
_WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
# Errors PIL raises on a corrupt file: OSError (truncation, UnidentifiedImageError), bad chunk
# structure (SyntaxError), short reads in headers (struct.error, EOFError, IndexError), bad tags or
# parameters (KeyError, ValueError, TypeError), unsupported variants (NotImplementedError), bad
# compressed data (zlib.error) and images too large to be anything but an attack.
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


def _decode(data: bytes) -> Image.Image:
    """Decode every pixel of ``data`` with truncation checks on; PNG chunk checksums first."""
    image = Image.open(io.BytesIO(data))
    if image.format == "PNG":
        image.verify()  # chunk CRCs
        image = Image.open(io.BytesIO(data))
    with _STRICT_DECODE:
        lenient = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            image.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    return image


def _upright(image: Image.Image, file_name: str) -> Image.Image:
    """``image`` with its EXIF orientation applied (as detectron2 does); unchanged when the
    EXIF data cannot be parsed (detectron2 also ignores broken EXIF)."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as error:
        logger.warning(f"Ignoring the unreadable EXIF orientation of {file_name!r}: {error}")
        return image


def _to_8_bit(image: Image.Image, file_name: str) -> Image.Image:
    """Wide integer grayscale -> 8-bit grayscale ("L"), values scaled from 16 bits
    (``round(v / 257)``, clipped to [0, 255]); other modes unchanged."""
    if image.mode == "F":
        raise UnreadableFileError(
            f"Image {file_name!r} has float pixels (PIL mode 'F'), which cannot be read as a "
            "colour image; convert it to 8 bits",
            file_name,
        )
    if image.mode not in _WIDE_GRAY_MODES:
        return image
    values = np.asarray(image).astype(np.float64)
    return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), "L")


def read_image(file_name: str, format: Optional[str] = None) -> np.ndarray:
    """Read an image (``format`` given: ``[H, W, C]`` uint8 in that format, e.g. "RGB", "BGR")
    or a label map (``format=None``: the stored values, ``[H, W]`` or ``[H, W, C]``), upright.

    Raises:
        MissingFileError: the file does not exist.
        UnreadableFileError: it cannot be decoded (corrupt, truncated, unsupported mode).
    """
    try:
        with PathManager.open(file_name, "rb") as f:
            data = f.read()
    except FileNotFoundError as error:
        raise MissingFileError(f"File not found: {file_name!r}", file_name) from error
    except IsADirectoryError as error:
        raise UnreadableFileError(f"{file_name!r} is a directory, not a file", file_name) from error
    if not data:
        raise UnreadableFileError(f"Cannot decode {file_name!r}: empty file (0 bytes)", file_name)
    try:
        image = _decode(data)
    except UnidentifiedImageError as error:
        raise UnreadableFileError(
            f"Cannot decode {file_name!r}: not an image PIL can read ({len(data)} bytes, "
            f"starting {data[:8]!r})",
            file_name,
        ) from error
    except _DECODE_ERRORS as error:
        raise UnreadableFileError(
            f"Cannot decode {file_name!r} (corrupt or truncated file?): {error}", file_name
        ) from error
    image = _upright(image, file_name)
    if format is None:
        return np.asarray(image)
    return convert_PIL_to_numpy(_to_8_bit(image, file_name), format)


def check_image_size(
    dataset_dict: Dict[str, Any], image: np.ndarray, file_name: Optional[str] = None
) -> None:
    """Check ``image`` (``[H, W, ...]``) against the dict's ``height``/``width`` when it has
    them, else set them from the image (as detectron2's ``check_image_size``). ``file_name``
    (default: the dict's) names the image in the error.

    Raises:
        SizeMismatchError: naming the file and both sizes (a ValueError, as detectron2's).
    """
    image_hw: Tuple[int, int] = (int(image.shape[0]), int(image.shape[1]))
    if "height" in dataset_dict or "width" in dataset_dict:
        expected = (dataset_dict.get("height"), dataset_dict.get("width"))
        if image_hw != expected:
            hint = ""
            if image_hw == expected[::-1]:
                hint = (
                    " (height and width swapped: images are read upright, with their EXIF "
                    "orientation applied as detectron2 does; annotations must be in that frame)"
                )
            file_name = file_name or dataset_dict.get("file_name")
            raise SizeMismatchError(
                f"Image {file_name!r} is {image_hw[1]}x{image_hw[0]} (WxH) "
                f"but its annotation says {expected[1]}x{expected[0]}{hint}"
            )
    dataset_dict.setdefault("height", image_hw[0])
    dataset_dict.setdefault("width", image_hw[1])
