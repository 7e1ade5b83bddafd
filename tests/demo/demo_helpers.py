"""Helpers of the demo tests: the demo's modules, and its command line on a tiny model."""

from pathlib import Path
from typing import List, Sequence

from tests.helpers.scripts import load_demo_module  # noqa: F401  (the demo tests' loader)

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "demo"
CONFIG = REPO / "configs/quick_schedules/Panoptic-R50-instant.yaml"
INSTANCE_CONFIG = REPO / "configs/quick_schedules/Instance-R50-instant.yaml"
SAMPLES = sorted((REPO / "tests/data/samples/coco_panoptic/images").glob("*.jpg"))
# Small inputs and every query a candidate segment: fast, and outputs to check.
SMALL_OPTS = [
    "INPUT.MIN_SIZE_TEST",
    "64",
    "INPUT.MAX_SIZE_TEST",
    "96",
    "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD",
    "0.0",
]


def demo_argv(
    weights: Path, *args: str, opts: Sequence[str] = (), config: Path = CONFIG
) -> List[str]:
    """Command line of the demo on an instant config with ``weights`` and small inputs."""
    return [
        "--config-file",
        str(config),
        *args,
        "--opts",
        "MODEL.WEIGHTS",
        str(weights),
        *SMALL_OPTS,
        *opts,
    ]
