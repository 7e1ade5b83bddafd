#!/usr/bin/env python
"""Convert a Mask2Former checkpoint to a transformers Mask2FormerForUniversalSegmentation directory.

    python tools/convert_to_hf.py --config-file configs/coco/panoptic-segmentation/swin/\
maskformer2_swin_tiny_bs16_50ep.yaml --weights model_final.pkl --output m2f-swin-t-coco-panoptic/

``--weights``: our training checkpoint (.pth), an official model-zoo .pkl or a plain state dict.
The directory gets ``config.json`` (label names from the dataset metadata, our config embedded),
the weights (``model.safetensors``) and ``preprocessor_config.json`` (resizing, normalisation),
and loads with ``Mask2FormerForUniversalSegmentation.from_pretrained(DIR)``. Needs the ``hf`` extra
(``pip install -e .[hf]``). Which configs convert: see ``mask2former/hf/config.py``.
"""

import argparse
import json
import logging
import sys

from detectron2.utils.logger import setup_logger

from mask2former.engine import build_config

logger = logging.getLogger("mask2former.convert_to_hf")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--weights", required=True, help=".pth / .pkl checkpoint or state dict")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument(
        "--class-names",
        metavar="JSON",
        help="a JSON list of label names, if the dataset of "
        "DATASETS.TRAIN[0] is not registered here",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="mask2former")
    import transformers

    from mask2former.hf.convert import class_names_for, load_weights, to_hf

    cfg = build_config(args.config_file, args.opts)  # embedded in config.json as given
    cpu_cfg = cfg.clone()
    cpu_cfg.defrost()
    cpu_cfg.MODEL.DEVICE = "cpu"
    if args.class_names:
        with open(args.class_names) as f:
            class_names = json.load(f)
    else:
        class_names = class_names_for(cfg)
    state_dict = load_weights(cpu_cfg, args.weights)
    model = to_hf(cfg, state_dict, class_names)
    model.save_pretrained(args.output)
    processor = transformers.Mask2FormerImageProcessor(
        size={"shortest_edge": cfg.INPUT.MIN_SIZE_TEST, "longest_edge": cfg.INPUT.MAX_SIZE_TEST},
        size_divisor=32,
        image_mean=[v / 255.0 for v in _rgb(cfg, cfg.MODEL.PIXEL_MEAN)],
        image_std=[v / 255.0 for v in _rgb(cfg, cfg.MODEL.PIXEL_STD)],
        ignore_index=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        num_labels=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
    )
    processor.save_pretrained(args.output)
    logger.info("Wrote %s (%d labels)", args.output, len(class_names))


def _rgb(cfg, values) -> list:
    """Per-channel values in RGB order (HF image processors feed RGB)."""
    return list(values)[::-1] if cfg.INPUT.FORMAT == "BGR" else list(values)


if __name__ == "__main__":
    main(sys.argv[1:])
