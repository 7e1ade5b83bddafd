"""Import the project's scripts (demo/*.py, tools/benchmarks/*.py: folders that are not packages)
as modules, the way running them does."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"
BENCHMARKS = REPO / "tools" / "benchmarks"


def load_script_module(folder: Path, name: str) -> ModuleType:
    """``<folder>/<name>.py`` as the module ``name`` (loaded once; ``folder`` stays on
    ``sys.path``, so the script's imports of its sibling modules, at import or later, work as
    when it runs, and tests patch the same module objects the script uses)."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_demo_module(name: str) -> ModuleType:
    """``demo/<name>.py`` as a module."""
    return load_script_module(DEMO, name)


def load_benchmark_module(name: str) -> ModuleType:
    """``tools/benchmarks/<name>.py`` as a module."""
    return load_script_module(BENCHMARKS, name)
