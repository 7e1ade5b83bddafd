"""One config-building function, ``mask2former.config.build_config``, shared by every entry point
(training, quick start, demo, tools, benchmarks), and the one place where a config is validated."""

import re
from pathlib import Path

import pytest

import mask2former.config
import mask2former.engine
from mask2former.config import build_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/quick_schedules/Panoptic-R50-instant.yaml"
# Entry points and the modules that build their config.
ENTRY_POINTS = {
    "tools/train_net.py": "mask2former/engine/setup.py",
    "tools/quickstart.py": "tools/quickstart.py",
    "demo/demo.py": "demo/demo.py",
    "tools/benchmarks/bench_model_forward.py": "tools/benchmarks/bench_model_forward.py",
}


def test_build_config_merges_overrides_validates_and_freezes() -> None:
    cfg = build_config(str(CONFIG), ["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "7"])
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 7
    assert cfg.MODEL.MASK_FORMER.HIDDEN_DIM == 64  # from the file
    assert cfg.SOLVER.POLY_LR_POWER == 0.9  # DeepLab's keys are there
    assert cfg.is_frozen()
    with pytest.raises(ValueError, match="MODEL.MASK_FORMER.DEC_LAYERS"):
        build_config(str(CONFIG), ["MODEL.MASK_FORMER.DEC_LAYERS", "0"])
    with pytest.raises(ValueError, match="SOLVER.AMP.DTYPE"):
        build_config("", ["SOLVER.AMP.DTYPE", "int8"])
    assert mask2former.engine.build_config is mask2former.config.build_config


def test_every_entry_point_builds_its_config_with_build_config() -> None:
    for entry, builder in ENTRY_POINTS.items():
        assert (ROOT / entry).is_file(), entry
        assert re.search(r"\bbuild_config\(", (ROOT / builder).read_text()), builder
    callers = [
        str(path.relative_to(ROOT))
        for folder in ("mask2former", "tools", "demo", "datasets")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"\bget_cfg\(", path.read_text())
    ]
    assert callers == ["mask2former/config.py"]
