"""The trainer extends detectron2 through public API only (issue 8): no ``._name`` of a detectron2
object in ``mask2former/engine/`` or ``tools/train_net.py``, so a detectron2 upgrade that renames
its internals cannot silently break training.

The check is at the level of the source text (an AST walk): a private attribute (``._name``, not
``.__dunder__``) is allowed only when our own scanned code defines that name and detectron2's
source never uses it; ``getattr``/``hasattr``/``setattr`` with a private name count as access,
and so do private names imported from ``detectron2``.
"""

import ast
import re
from pathlib import Path
from typing import List, Set

import detectron2

ROOT = Path(__file__).resolve().parents[2]
SCANNED = sorted((ROOT / "mask2former/engine").glob("*.py")) + [ROOT / "tools/train_net.py"]
ATTRIBUTE_FUNCTIONS = {"getattr", "hasattr", "setattr", "delattr"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def detectron2_private_names() -> Set[str]:
    """Every private name detectron2's own source defines or uses as an attribute."""
    names: Set[str] = set()
    for path in Path(detectron2.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        names.update(re.findall(r"\.(_\w+)", text))
        names.update(re.findall(r"\bdef (_\w+)", text))
    return {n for n in names if is_private(n)}


def defined_names(tree: ast.AST) -> Set[str]:
    """Names our code defines: functions, classes, class attributes and ``self.x = ...``."""
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Attribute):
                    names.add(target.attr)
    return names


def private_accesses(source: str, forbidden: Set[str]) -> List[str]:
    """``line: name`` for each private attribute of a detectron2 object used in ``source``."""
    tree = ast.parse(source)
    ours = defined_names(tree) - forbidden
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            calls_super = (
                isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "super"
            )
            if calls_super or node.attr not in ours:
                name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
            and node.args[1].value not in ours
        ):
            name = node.args[1].value
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("detectron2"):
            private = [a.name for a in node.names if is_private(a.name)]
            name = ", ".join(private) or None
        if name is not None:
            found.append(f"{node.lineno}: {name}")
    return found


def test_engine_and_train_net_use_no_private_detectron2_attribute() -> None:
    forbidden = detectron2_private_names()
    assert {"_trainer", "_last_eval_results", "_data_loader_iter"} <= forbidden
    problems = {
        str(path.relative_to(ROOT)): private_accesses(path.read_text(), forbidden)
        for path in SCANNED
    }
    assert len(problems) >= 5 and "tools/train_net.py" in problems
    assert all(not found for found in problems.values()), problems


def test_the_check_finds_the_old_private_uses() -> None:
    """What the trainer did before issue 8 is reported; our own attributes are not."""
    forbidden = detectron2_private_names()
    old = (
        "class Trainer(DefaultTrainer):\n"
        "    def __init__(self, cfg):\n"
        "        self._trainer = build_train_loop(model)\n"
        "    def train(self):\n"
        "        super().train()\n"
        "        return getattr(self, '_last_eval_results', None)\n"
        "    def run_step(self):\n"
        "        data = next(self._data_loader_iter)\n"
        "        return super()._write_metrics(data)\n"
    )
    assert private_accesses(old, forbidden) == [
        "3: _trainer",
        "6: _last_eval_results",
        "8: _data_loader_iter",
        "9: _write_metrics",
    ]
    assert private_accesses("from detectron2.engine.defaults import _try_get_key\n", forbidden)
    ours = (
        "class Hook:\n"
        "    def __init__(self):\n"
        "        self._m2f_pending = []\n"
        "    def step(self):\n"
        "        return self._m2f_pending, self.__class__\n"
    )
    assert private_accesses(ours, forbidden) == []
