"""Fixtures of the evaluation tests: a Mask2Former config and the registered ADE20K sample."""

from pathlib import Path

import pytest
from detectron2.config import CfgNode, get_cfg
from evaluation_samples import register_ade20k_sample

from mask2former.config import add_maskformer2_config


@pytest.fixture()
def make_cfg(tmp_path: Path):
    """``make_cfg(semantic_on=..., instance_on=..., panoptic_on=...)`` -> a Mask2Former config."""

    def make(
        semantic_on: bool = True, instance_on: bool = False, panoptic_on: bool = False
    ) -> CfgNode:
        cfg = get_cfg()
        add_maskformer2_config(cfg)
        cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = semantic_on
        cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON = instance_on
        cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = panoptic_on
        cfg.OUTPUT_DIR = str(tmp_path / "output")
        return cfg

    return make


@pytest.fixture(scope="session")
def ade_dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The ADE20K sample as a registered semantic dataset (labels 0..149, 255 ignored)."""
    return register_ade20k_sample(tmp_path_factory.mktemp("ade20k"))
