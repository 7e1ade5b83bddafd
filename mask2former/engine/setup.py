"""Config + logging setup of ``tools/train_net.py`` (the config itself: :func:`build_config`)."""

from __future__ import annotations

import argparse

from detectron2.config import CfgNode
from detectron2.engine import default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from mask2former.config import build_config

__all__ = ["build_config", "setup"]


def setup(args: argparse.Namespace) -> CfgNode:
    """Build the config from ``args.config_file`` / ``args.opts`` and set up logging and output."""
    cfg = build_config(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="mask2former")
    return cfg
