"""The tested detectron2 is pinned in one place (``mask2former/utils/detectron2_pin.py``), which the
setup script and the README follow, and a different installed detectron2 is warned about."""

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Optional

import pytest

from mask2former.utils import detectron2_pin
from mask2former.utils.detectron2_pin import (
    SOURCE_COMMIT,
    SOURCE_URL,
    WHEEL_NAME,
    WHEEL_VERSION,
    check_detectron2_version,
    describe_installed_detectron2,
)

ROOT = Path(__file__).resolve().parents[2]
PIN = ROOT / "mask2former/utils/detectron2_pin.py"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Installing detectron2")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_and_setup_script_follow_the_pin() -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", SOURCE_COMMIT)
    section = readme_section()
    assert set(re.findall(r"\b[0-9a-f]{40}\b", section)) == {SOURCE_COMMIT}
    assert set(re.findall(r"\b[0-9a-f]{7}\b", section)) >= {SOURCE_COMMIT[:7]}
    versions = set(re.findall(rf"{WHEEL_NAME.replace('-', '[-_]')}[=-]+([0-9][\w.]*\d)", section))
    assert versions == {WHEEL_VERSION}
    assert "detectron2_pin.py" in section
    script = (ROOT / "scripts/setup_env.sh").read_text()
    assert "mask2former/utils/detectron2_pin.py" in script
    assert WHEEL_VERSION not in script and WHEEL_NAME not in script  # read from the pin, not copied


def test_pin_prints_standalone() -> None:
    """``scripts/setup_env.sh`` runs it before anything is installed: standard library only."""
    out = subprocess.run(
        [sys.executable, "-I", str(PIN), "shell"], capture_output=True, text=True, check=True
    ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())
    assert values == {
        "D2_WHEEL_NAME": WHEEL_NAME,
        "D2_WHEEL_VERSION": WHEEL_VERSION,
        "D2_SOURCE_URL": SOURCE_URL,
        "D2_SOURCE_COMMIT": SOURCE_COMMIT,
    }


def test_this_environment_has_the_pinned_detectron2() -> None:
    matches, installed = describe_installed_detectron2()
    assert matches, f"the tests run with {installed}, not the pinned detectron2"


class FakeMetadata:
    """Stands in for ``importlib.metadata`` with the given installed distributions."""

    PackageNotFoundError = type("PackageNotFoundError", (Exception,), {})

    def __init__(self, versions: Dict[str, str], direct_url: Optional[dict] = None) -> None:
        self.versions = versions
        self.direct_url = direct_url

    def version(self, name: str) -> str:
        if name not in self.versions:
            raise self.PackageNotFoundError(name)
        return self.versions[name]

    def distribution(self, name: str) -> SimpleNamespace:
        self.version(name)
        text = None if self.direct_url is None else json.dumps(self.direct_url)
        return SimpleNamespace(read_text=lambda filename: text)


@pytest.mark.parametrize(
    "fake, warns",
    [
        (FakeMetadata({WHEEL_NAME: WHEEL_VERSION}), False),
        (FakeMetadata({WHEEL_NAME: "0.7.1"}), True),
        (FakeMetadata({"detectron2": "0.6"}, {"vcs_info": {"commit_id": SOURCE_COMMIT}}), False),
        (FakeMetadata({"detectron2": "0.6"}, {"vcs_info": {"commit_id": "0" * 40}}), True),
        (FakeMetadata({"detectron2": "0.6"}, {"dir_info": {"editable": True}}), False),
        (FakeMetadata({}), False),
    ],
)
def test_a_different_detectron2_is_warned_about(
    fake: FakeMetadata,
    warns: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(detectron2_pin, "metadata", fake)
    check_detectron2_version.cache_clear()
    with caplog.at_level(logging.INFO, logger=detectron2_pin.__name__):
        check_detectron2_version()
        check_detectron2_version()  # once per process
    check_detectron2_version.cache_clear()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == int(warns)
    if warns:
        assert SOURCE_COMMIT in warnings[0].getMessage() and "README" in warnings[0].getMessage()
