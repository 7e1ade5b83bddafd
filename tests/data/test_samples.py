"""The real data samples (tests/data/samples/*): each SOURCES.md table lists exactly the files of
its folder."""

import re
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent / "samples"


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()))
def test_sources_list_exactly_the_sample_files(sample: str) -> None:
    folder = SAMPLES / sample
    listed = set()
    for line in (folder / "SOURCES.md").read_text().splitlines():
        if line.startswith("| `"):  # a table row: its first cell names the files
            listed.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {
        "SOURCES.md"
    }
    assert listed == present
