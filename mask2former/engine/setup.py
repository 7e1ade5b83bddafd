"""Config + logging setup shared by ``tools/train_net.py`` and the quick start."""

from __future__ import annotations

import argparse

from detectron2.config import CfgNode, get_cfg
from detectron2.engine import default_setup
from detectron2.projects.deeplab import add_deeplab_config
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from mask2former.config import add_maskformer2_config, validate_maskformer2_config

__all__ = ["build_config", "setup"]


def build_config(config_file: str, opts: list) -> CfgNode:
    """Defaults (detectron2, DeepLab, Mask2Former) + ``config_file`` + ``opts``, frozen."""
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    validate_maskformer2_config(cfg)
    cfg.freeze()
    return cfg


def setup(args: argparse.Namespace) -> CfgNode:
    """Build the config from ``args.config_file`` / ``args.opts`` and set up logging and output."""
    cfg = build_config(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="mask2former")
    return cfg
