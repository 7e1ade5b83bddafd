# Copyright (c) the mask2former authors.
"""Command-line handling shared by the dataset preparation scripts (``datasets/prepare_*.py``).

The scripts are run as ``python datasets/prepare_<name>.py [--root DIR] ...`` and import this
module from the installed package (as they import the category tables), so they work from any
working directory. ``--root`` defaults to the root the registered datasets are read from
(``$DETECTRON2_DATASETS``, default ``./datasets``; see
:func:`mask2former.data.datasets.dataset_root`).
"""

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from .datasets.builtin import TRAIN_VAL_SPLITS
from .datasets.dataset_root import DATASET_ROOT_ENV, dataset_root

__all__ = ["TRAIN_VAL_SPLITS", "parse_prepare_args", "prepare_parser"]


def prepare_parser(doc: str, dataset_folder: str) -> argparse.ArgumentParser:
    """Parser of a preparation script with its ``--root`` option.

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


def parse_prepare_args(
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
