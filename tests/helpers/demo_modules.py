"""Import the demo scripts (demo/*.py, which are not a package) as modules."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DEMO = Path(__file__).resolve().parents[2] / "demo"


def load_demo_module(name: str) -> ModuleType:
    """``demo/<name>.py`` as a module (with ``demo/`` on ``sys.path`` while it is imported, for
    its own imports of ``predictor``)."""
    sys.path.insert(0, str(DEMO))
    try:
        spec = importlib.util.spec_from_file_location(name, DEMO / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(DEMO))
