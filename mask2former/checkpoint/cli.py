"""The command line shared by the ``tools/convert-*-to-d2.py`` scripts: ``IN OUT`` as in the
official converters, plus ``--trust-pickle``."""

import argparse
import logging
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

from torch import Tensor

from .io import ConversionError, load_published_state_dict, save_d2_pickle

__all__ = ["converter_main"]

# state dict as published -> (converted state dict, "__author__" of the pickle)
Converter = Callable[[Dict[str, Tensor]], Tuple[Dict[str, Tensor], str]]


def converter_main(doc: str, convert: Converter, argv: Optional[Sequence[str]] = None) -> int:
    """Parses ``IN OUT [--trust-pickle]``, converts IN with ``convert`` and writes the pickle OUT.

    Returns the process exit code: 0, or 1 after logging an error that names the input file.
    """
    parser = argparse.ArgumentParser(
        description=doc.strip().splitlines()[0],
        epilog=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="published checkpoint (.pth/.bin/.safetensors)")
    parser.add_argument("output", type=Path, help="detectron2 pickle to write (.pkl)")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="unpickle a .pth that holds Python objects besides tensors (only trusted files)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        state = load_published_state_dict(args.input, trust_pickle=args.trust_pickle)
        converted, author = convert(state)
    except (ConversionError, FileNotFoundError) as e:
        message = str(e)
        logging.getLogger(__name__).error(
            "%s", message if str(args.input) in message else f"{args.input}: {message}"
        )
        return 1
    save_d2_pickle(converted, args.output, author=author)
    return 0
