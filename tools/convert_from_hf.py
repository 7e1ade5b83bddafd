#!/usr/bin/env python
"""Convert a transformers Mask2FormerForUniversalSegmentation directory to a Mask2Former checkpoint.

    python tools/convert_from_hf.py --input m2f-swin-t-coco-panoptic/ --output model.pth \
        --config-output model.yaml
    python tools/train_net.py --config-file model.yaml --eval-only

The config comes from the one ``tools/convert_to_hf.py`` embedded in ``config.json``; for other HF
checkpoints from ``--base-config`` (e.g. the matching recipe, for datasets and test settings), else
from the registered dataset whose label names match. Architecture keys always come from the HF
config. Needs the ``hf`` extra (``pip install -e .[hf]``).
"""

import argparse
import logging
import os
import sys

import torch
from detectron2.utils.logger import setup_logger

logger = logging.getLogger("mask2former.convert_from_hf")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="a from_pretrained directory")
    parser.add_argument("--output", required=True, help="the checkpoint to write (.pth)")
    parser.add_argument("--config-output", metavar="YAML", help="write the matching config here")
    parser.add_argument("--base-config", metavar="YAML", help="config to start from (optional)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="mask2former")
    import transformers

    import mask2former  # noqa: F401  (registers the model and datasets)
    from mask2former.hf.convert import from_hf

    if not os.path.isfile(os.path.join(args.input, "config.json")):
        raise FileNotFoundError(f"--input {args.input!r} has no config.json")
    model = transformers.Mask2FormerForUniversalSegmentation.from_pretrained(args.input)
    processor = None
    if os.path.isfile(os.path.join(args.input, "preprocessor_config.json")):
        processor = transformers.Mask2FormerImageProcessor.from_pretrained(args.input)
    cfg, state_dict = from_hf(model, base_config=args.base_config, preprocessor=processor)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save({"model": state_dict, "__author__": "tools/convert_from_hf.py"}, args.output)
    logger.info("Wrote %s (%d tensors)", args.output, len(state_dict))
    if args.config_output:
        cfg.MODEL.WEIGHTS = os.path.abspath(args.output)
        with open(args.config_output, "w") as f:
            f.write(cfg.dump())
        logger.info("Wrote %s", args.config_output)


if __name__ == "__main__":
    main(sys.argv[1:])
