"""The official fixtures (tests/fixtures/official_tiny*): their READMEs name only files that are in
the repository, and their data files are the ones the official code produced (manifest.json)."""

import hashlib
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
NAMES = ("official_tiny", "official_tiny_swin")
# Files edited by hand after generation (said in the fixture's README): their manifest sha256 is
# that of the generated original.
EDITED_AFTER_GENERATION = {("official_tiny_swin", "config_overrides.yaml")}
# A file name in backquotes: `state_dict.pth`, `configs/coco/.../x.yaml`, `../official_tiny/x.md`.
FILE_NAME = re.compile(r"`([\w./-]+\.(?:pth|json|yaml|png|md|py))`")


def _resolve(folder: Path, name: str) -> Path:
    if "/" in name and not name.startswith("../"):
        return REPO / name  # a repository path, e.g. configs/... or tests/test_fixtures.py
    return folder / name


@pytest.mark.parametrize("name", NAMES)
def test_readme_names_only_files_that_exist(name: str) -> None:
    folder = FIXTURES / name
    mentioned = set(FILE_NAME.findall((folder / "README.md").read_text()))
    assert {"manifest.json", "image.png", "state_dict.pth"} <= mentioned
    missing = sorted(m for m in mentioned if not _resolve(folder, m).is_file())
    assert missing == [], f"{name}/README.md names files that are not in the repository"


@pytest.mark.parametrize("name", NAMES)
def test_data_files_are_the_generated_ones(name: str) -> None:
    folder = FIXTURES / name
    files = json.loads((folder / "manifest.json").read_text())["files"]
    on_disk = {p.name for p in folder.iterdir() if p.is_file()}
    assert on_disk == set(files) | {"manifest.json", "README.md"}
    for file, entry in files.items():
        if (name, file) in EDITED_AFTER_GENERATION:
            continue
        data = (folder / file).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (
            entry["bytes"],
            entry["sha256"],
        ), f"{name}/{file} differs from the file the official code produced"
