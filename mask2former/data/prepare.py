# Copyright (c) the mask2former authors.
"""What the dataset preparation scripts (``datasets/prepare_*.py``) share: the command line, the
loop over the train/val splits, and the listing of images with their label PNGs.

The scripts are run as ``python datasets/prepare_<name>.py [--root DIR] ...`` and import this
module from the installed package (as they import the category tables), so they work from any
working directory. ``--root`` defaults to the root the registered datasets are read from
(``$DETECTRON2_DATASETS``, default ``./datasets``; see
:func:`mask2former.data.datasets.dataset_root`).
"""

import argparse
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from .datasets.builtin import TRAIN_VAL_SPLITS
from .datasets.dataset_root import DATASET_ROOT_ENV, dataset_root

__all__ = [
    "TRAIN_VAL_SPLITS",
    "argument_parser",
    "dataset_folder",
    "for_each_split",
    "image_entries",
    "parse_args",
    "read_label_png",
    "require_folders",
]

logger = logging.getLogger(__name__)


def argument_parser(doc: str, dataset_folder: str) -> argparse.ArgumentParser:
    """Parser of a preparation script with its ``--root`` option (add others, then call
    :func:`parse_args`).

    Args:
        doc: the script's docstring; its first paragraph is the description.
        dataset_folder: the folder under the root that the script reads (named in the help).
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"dataset root holding {dataset_folder}/ (default: ${DATASET_ROOT_ENV} or datasets)",
    )
    return parser


def parse_args(
    parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None
) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``) and log at INFO level.

    Returns:
        The arguments, ``root`` a :class:`~pathlib.Path` (the dataset root when not given).
    """
    args = parser.parse_args(argv)
    if args.root is None:
        args.root = Path(dataset_root())
    logging.basicConfig(level=logging.INFO)
    return args


def dataset_folder(doc: str, folder: str, argv: Optional[Sequence[str]] = None) -> Path:
    """``<root>/<folder>`` for a script whose only option is ``--root`` (see
    :func:`argument_parser` and :func:`parse_args`)."""
    return parse_args(argument_parser(doc, folder), argv).root / folder


def for_each_split(convert: Callable[[str, str], int], counted: str) -> None:
    """Run ``convert(split, folder)`` on each of :data:`TRAIN_VAL_SPLITS` and log the number it
    returns (e.g. of ``counted`` = "instances" written)."""
    for split, folder in TRAIN_VAL_SPLITS:
        logger.info(f"{split}: {convert(split, folder)} {counted}")


def require_folders(*folders: Path) -> None:
    """Raise a FileNotFoundError naming the first of ``folders`` that is not a directory."""
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"Dataset folder not found: {str(folder)!r}")


def image_entries(image_dir: Path, pattern: str = "*.jpg") -> List[Dict[str, Any]]:
    """COCO ``images`` entries (``id`` = file stem, ``file_name``, ``width``, ``height``) of the
    images of ``image_dir`` matching ``pattern``, sorted by name."""
    entries = []
    for image_file in sorted(Path(image_dir).glob(pattern)):
        width, height = Image.open(image_file).size
        entries.append(
            {"id": image_file.stem, "file_name": image_file.name, "width": width, "height": height}
        )
    return entries


def read_label_png(path: Path, image: Dict[str, Any], mode: Optional[str] = None) -> np.ndarray:
    """The annotation PNG ``path`` of ``image`` (an :func:`image_entries` entry) as an array,
    converted to ``mode`` (e.g. "RGB") when given; raises if its size is not the image's."""
    label = Image.open(path)
    if mode is not None:
        label = label.convert(mode)
    if label.size != (image["width"], image["height"]):
        raise ValueError(
            f"{str(path)!r} has size {label.size[0]}x{label.size[1]} (WxH) but image "
            f"{image['file_name']!r} has {image['width']}x{image['height']}"
        )
    return np.asarray(label)
