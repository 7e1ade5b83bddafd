"""Configs and checkpoints are data, never code (issue 9, item 5): nothing in the project calls
``eval``/``exec`` or loads YAML unsafely (an AST scan of the package, tools, demo and dataset
scripts), and a config file with a Python-object YAML tag is refused, not run."""

import ast
from pathlib import Path
from typing import List

import pytest

from mask2former.config import build_config

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("mask2former", "tools", "demo", "datasets")
UNSAFE_YAML = {"unsafe_load", "full_load", "load_all", "unsafe_load_all", "full_load_all"}


def code_execution(source: str) -> List[str]:
    """``line: what`` for each eval/exec call, unsafe YAML load or unsafe config merge."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func, keywords = node.func, {k.arg: k.value for k in node.keywords}
        if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
            found.append(f"{node.lineno}: {func.id}()")
        elif isinstance(func, ast.Attribute) and func.attr in UNSAFE_YAML:
            found.append(f"{node.lineno}: yaml.{func.attr}()")
        elif isinstance(func, ast.Attribute) and func.attr == "load" and "Loader" in keywords:
            loader = ast.unparse(keywords["Loader"])
            if "Safe" not in loader:
                found.append(f"{node.lineno}: yaml.load(Loader={loader})")
        elif isinstance(func, ast.Attribute) and func.attr == "merge_from_file":
            unsafe = keywords.get("allow_unsafe")
            # detectron2's CfgNode.merge_from_file defaults to allow_unsafe=True
            if not (isinstance(unsafe, ast.Constant) and unsafe.value is False):
                found.append(f"{node.lineno}: merge_from_file without allow_unsafe=False")
    return found


def test_no_eval_exec_or_unsafe_yaml_in_the_project() -> None:
    files = [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 50
    problems = {str(p.relative_to(ROOT)): code_execution(p.read_text()) for p in files}
    assert {path: found for path, found in problems.items() if found} == {}


def test_the_scan_finds_each_kind() -> None:
    source = (
        "x = eval(cfg.MODEL.SOME_KEY)\n"
        "exec(text)\n"
        "data = yaml.unsafe_load(f)\n"
        "data = yaml.load(f, Loader=yaml.Loader)\n"
        "cfg.merge_from_file(path)\n"
        "ok = yaml.load(f, Loader=yaml.SafeLoader)\n"
        "cfg.merge_from_file(path, allow_unsafe=False)\n"
        "model.eval()\n"
    )
    assert code_execution(source) == [
        "1: eval()",
        "2: exec()",
        "3: yaml.unsafe_load()",
        "4: yaml.load(Loader=yaml.Loader)",
        "5: merge_from_file without allow_unsafe=False",
    ]


def test_config_with_a_python_tag_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"SEED: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(Exception, match="python/object/apply"):
        build_config(str(config))
    assert not marker.exists()
