"""The documentation names only what exists, so docs and code cannot drift apart silently.

- ``docs/extending.md``: every ``python``/``yaml`` block is either a file of ``docs/examples/``
  shown in full (marked ``<!-- file: PATH -->``, and equal to that file) or marked
  ``<!-- fragment -->`` (and then parses); every example file is shown.
- ``docs/model_zoo.md`` names every config file of ``configs/``.
- In ``docs/*.md`` and ``README.md``: every repository path exists; every config key in backquotes
  is a key of the config every entry point builds; every class, registry and called function in
  backquotes is defined in this repository or in detectron2/torch; every ``--option`` of a
  ``python <script>`` command is one the script accepts.
"""

import ast
import itertools
import keyword
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import detectron2
import pytest
import torch
import yaml
from detectron2.config import CfgNode

from mask2former.config import build_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
EXTENDING = ROOT / "docs/extending.md"
MODEL_ZOO = ROOT / "docs/model_zoo.md"
EXAMPLES = ROOT / "docs/examples"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!-- (?:file: (\S+)|(fragment)) -->\s*$")
# Top-level folders and files of the repository that the docs refer to.
PATH = re.compile(
    r"(?<![\w./-])((?:mask2former|configs|tools|demo|datasets|docs|tests|scripts)/[\w.*/-]+"
    r"|README\.md|requirements\.txt|setup\.py|pyproject\.toml)"
)
CONFIG_ROOTS = ("MODEL", "INPUT", "SOLVER", "DATASETS", "DATALOADER", "TEST", "CUDNN_BENCHMARK")
CONFIG_KEY = re.compile(r"^(?:" + "|".join(CONFIG_ROOTS) + r")(?:\.[A-Z0-9_{},*]+)+$")
# A class name: a capital, then letters and digits, some lower case (not e.g. `RGB`).
CLASS_NAME = re.compile(r"^[A-Z](?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]+$")
REGISTRY = re.compile(r"^[A-Z][A-Z0-9_]*_REGISTRY$")
CALL = re.compile(r"^([a-z_][a-z0-9_]*)\(")
COMMAND = re.compile(r"^python (\S+\.py)(.*)$")


@lru_cache(maxsize=1)
def repository_files() -> List[str]:
    """Every file of the checkout, relative (without .git, .venv, build and caches)."""
    skip = {".git", ".venv", "build", "__pycache__", "output", "datasets_cache"}
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in skip]
        files += [Path(folder, n).relative_to(ROOT).as_posix() for n in names]
    return files


def code_spans(text: str) -> List[str]:
    """Inline code spans (``...``) outside fenced blocks."""
    return re.findall(r"`([^`\n]+)`", FENCE.sub("", text))


def fenced_blocks(text: str) -> Iterator[Tuple[str, str, str]]:
    """(language, content, the line before the fence) of every fenced block."""
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        yield match.group(1), match.group(2), before


def expand_braces(key: str) -> List[str]:
    """``A.{B,C}_ON`` -> ``["A.B_ON", "A.C_ON"]``."""
    parts = re.split(r"\{([^}]*)\}", key)
    choices = [p.split(",") if i % 2 else [p] for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


@lru_cache(maxsize=1)
def full_config() -> CfgNode:
    # Every key: detectron2's, DeepLab's, Mask2Former's (image and video). The defaults alone do not
    # validate (the default decoder needs this input), hence the override.
    return build_config(
        "", ["MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE", "multi_scale_pixel_decoder"]
    )


def has_key(cfg: CfgNode, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if part == "*":
            return isinstance(node, CfgNode) and len(node) > 0
        if not isinstance(node, CfgNode) or part not in node:
            return False
        node = node[part]
    return True


@lru_cache(maxsize=1)
def defined_names() -> Set[str]:
    """Classes, functions and module-level names defined in this repository and detectron2."""
    sources = list((ROOT / "mask2former").rglob("*.py")) + list((ROOT / "tools").rglob("*.py"))
    sources += list(EXAMPLES.glob("*.py")) + list(Path(detectron2.__file__).parent.rglob("*.py"))
    names: Set[str] = set()
    pattern = re.compile(r"^\s*(?:class|def)\s+(\w+)|^(\w+)\s*[:=]", re.M)
    for source in sources:
        for match in pattern.finditer(source.read_text(encoding="utf-8", errors="replace")):
            names.add(match.group(1) or match.group(2))
    return names


def is_defined(name: str) -> bool:
    if keyword.iskeyword(name):  # True, False, None
        return True
    modules = (torch, torch.nn, torch.nn.parallel)
    return name in defined_names() or any(hasattr(module, name) for module in modules)


# ----------------------------------------------------------------------------- extending.md
def test_extending_code_blocks_are_the_example_files_or_marked_fragments() -> None:
    text = EXTENDING.read_text()
    shown: Set[Path] = set()
    for language, content, before in fenced_blocks(text):
        if language not in ("python", "yaml"):
            continue
        marker = MARKER.match(before.strip())
        assert marker, f"{language} block not marked as a file or a fragment:\n{content[:200]}"
        path, fragment = marker.groups()
        if fragment:
            if language == "python":
                ast.parse(content)
            else:
                yaml.safe_load(content)
            continue
        file = ROOT / path
        assert file.parent == EXAMPLES and file.is_file(), f"{path} is not a docs/examples file"
        assert {".py": "python", ".yaml": "yaml"}[file.suffix] == language, path
        assert content == file.read_text(), f"the block of {path} differs from the file"
        shown.add(file)
    examples = {p for p in EXAMPLES.iterdir() if p.suffix in (".py", ".yaml")}
    assert examples and shown == examples, f"not shown in extending.md: {sorted(examples - shown)}"


# ----------------------------------------------------------------------------- model_zoo.md
def test_model_zoo_names_every_config_file() -> None:
    text = MODEL_ZOO.read_text()
    named = set(re.findall(r"configs/[\w./-]+\.yaml", text))
    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml")}
    assert not configs - named, f"configs missing from model_zoo.md: {sorted(configs - named)}"
    assert not named - configs, f"model_zoo.md names missing configs: {sorted(named - configs)}"


# ----------------------------------------------------------------------------- all docs
@pytest.mark.parametrize("doc", [*DOCS, ROOT / "README.md"], ids=lambda p: p.name)
def test_every_repository_path_exists(doc: Path) -> None:
    missing = []
    for path in PATH.findall(doc.read_text()):
        path = path.rstrip(".,:;)")
        if "<" in path or "{" in path:
            continue  # placeholders
        if not (list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()):
            missing.append(path)
    # Relative file names in backquotes (`heads/mask_former_head.py`, `registry.py`): some file of
    # the repository ends with them.
    for span in code_spans(doc.read_text()):
        if re.match(r"^[\w/.-]+\.py$", span) and not PATH.match(span):
            if not any(f == span or f.endswith("/" + span) for f in repository_files()):
                missing.append(span)
    assert not missing, f"{doc.name} names paths that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_config_key_exists(doc: Path) -> None:
    missing = []
    for span in code_spans(doc.read_text()):
        key = span.split(":")[0].split(" ")[0]  # `KEY: value` or `KEY value`
        if CONFIG_KEY.match(key):
            missing += [k for k in expand_braces(key) if not has_key(full_config(), k)]
    assert not missing, f"{doc.name} names config keys that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_class_registry_and_function_is_defined(doc: Path) -> None:
    missing = []
    for span in code_spans(doc.read_text()):
        call = CALL.match(span)
        if re.match(r"^[\w.]+$", span):  # `Name`, `module.Name`, `Class.method`
            parts = span.split(".")
            for i, part in enumerate(parts):
                named = CLASS_NAME.match(part) or REGISTRY.match(part)
                of_a_class = i > 0 and CLASS_NAME.match(parts[i - 1])
                if (named or of_a_class) and not is_defined(part):
                    missing.append(part)
        elif call and not is_defined(call.group(1)):
            missing.append(call.group(1))
    assert not missing, f"{doc.name} names undefined classes/functions: {sorted(set(missing))}"


def quoted_options(text: str) -> Set[str]:
    return set(re.findall(r"[\"'](--[\w-]+)[\"']", text))


def script_options(script: Path) -> Set[str]:
    """The ``--options`` a script defines: in its source, in detectron2's default parser when it
    uses that, in the converters' shared command line, in ``tools/train_net.py`` for the runner
    of the extension examples, in the speed benchmarks' shared arguments."""
    text = script.read_text()
    options = quoted_options(text) | {"--help"}
    if "default_argument_parser" in text:
        from detectron2.engine import default_argument_parser

        options |= set(re.findall(r"(?<![\w-])(--[\w-]+)", default_argument_parser().format_help()))
    if "converter_main" in text:
        options |= quoted_options((ROOT / "mask2former/checkpoint/cli.py").read_text())
    if "train_net.invoke_main" in text:
        options |= script_options(ROOT / "tools/train_net.py")
    if "add_common_args" in text:  # the speed benchmarks' shared options
        options |= quoted_options((ROOT / "tools/benchmarks/_bench_common.py").read_text())
    return options


@pytest.mark.parametrize("doc", [*DOCS, ROOT / "README.md"], ids=lambda p: p.name)
def test_every_command_option_exists(doc: Path) -> None:
    unknown = []
    for language, content, _ in fenced_blocks(doc.read_text()):
        if language != "bash":
            continue
        for line in content.replace("\\\n", " ").splitlines():
            command = COMMAND.match(line.strip())
            if not command:
                continue
            script = ROOT / command.group(1)
            assert script.is_file(), f"{doc.name}: no script {command.group(1)}"
            arguments = command.group(2).split("#")[0]
            options = set(re.findall(r"(?<!\S)(--[\w-]+)", arguments))
            unknown += [f"{command.group(1)} {o}" for o in options - script_options(script)]
    assert not unknown, f"{doc.name} uses options the scripts do not accept: {unknown}"
