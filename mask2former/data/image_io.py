# Copyright (c) the mask2former authors.
"""Reading images and label maps, strictly.

Same results as detectron2's ``detection_utils.read_image`` (EXIF orientation applied, so images
are upright as COCO annotations expect; the same ``format`` values) for the images it reads
right, with these differences:

- the file is decoded completely while it is open (PIL decodes lazily), so a truncated or
  corrupt file fails here, as :class:`~mask2former.data.bad_samples.UnreadableFileError` naming
  it (PIL's own errors do not name the file); a missing file is a
  :class:`~mask2former.data.bad_samples.MissingFileError`. PIL's
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` (which makes PIL fill truncated images with grey) must stay
  False: this project never sets it, and :func:`read_image` warns once if some other code did;
- colour reading (``format`` given) of 16-bit (and 32-bit integer) grayscale images scales their
  values to 8 bits (PIL's conversion clips them at 255, turning most pixels white); CMYK, RGBA /
  LA (alpha dropped), palette and 1-bit images go through PIL's conversion, as in detectron2;
  float images are refused;
- label maps (``format=None``) are returned with their stored values: uint8 or uint16 labels,
  palette indices for palette PNGs.
"""

import logging
from typing import Any, Dict, Optional, Tuple

import numpy as np
from detectron2.data.detection_utils import SizeMismatchError, convert_PIL_to_numpy
from detectron2.utils.file_io import PathManager
from PIL import Image, ImageFile, ImageOps

from .bad_samples import MissingFileError, UnreadableFileError

__all__ = ["check_image_size", "read_image"]

logger = logging.getLogger(__name__)

# PIL modes of integer grayscale images wider than 8 bits.
_WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
# Errors PIL raises on a corrupt file (UnidentifiedImageError and truncation are OSErrors;
# broken PNG chunks raise SyntaxError; a huge image raises DecompressionBombError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_warned_truncated_flag = False


def _warn_if_truncated_images_allowed() -> None:
    global _warned_truncated_flag
    if ImageFile.LOAD_TRUNCATED_IMAGES and not _warned_truncated_flag:
        _warned_truncated_flag = True
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (set by code outside mask2former): "
            "truncated images will be read with grey fill instead of being reported"
        )


def _upright(image: Image.Image, file_name: str) -> Image.Image:
    """``image`` with its EXIF orientation applied (as detectron2 does); unchanged when the
    EXIF data cannot be parsed (detectron2 also ignores broken EXIF)."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS + (KeyError, TypeError) as error:
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
    _warn_if_truncated_images_allowed()
    try:
        with PathManager.open(file_name, "rb") as f:
            image = Image.open(f)
            image.load()  # decode everything now: truncation and corruption show here
    except FileNotFoundError as error:
        raise MissingFileError(f"File not found: {file_name!r}", file_name) from error
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
