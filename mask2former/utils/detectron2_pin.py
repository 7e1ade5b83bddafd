"""The detectron2 this project is tested with: the one place where its version is pinned.

Two install routes, both upstream ``main`` of mid-2024:

- the PyPI wheel ``sal-detectron2==0.7.2`` (CPU machines, no GitHub access; what
  ``scripts/setup_env.sh`` installs), a build of upstream ``main`` of 2024-08;
- the upstream source at commit :data:`SOURCE_COMMIT` (GPU machines, the official way; it also
  builds ``detectron2._C`` with CUDA).

``scripts/setup_env.sh`` and the README read the pin from here (this file runs standalone with
the standard library only: ``python mask2former/utils/detectron2_pin.py shell``);
:func:`check_detectron2_version` (called by :func:`mask2former.config.build_config`) logs a
warning when the installed detectron2 is another one. README "Installing detectron2" says how to
move the pin.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
from importlib import metadata
from typing import Optional

__all__ = [
    "SOURCE_COMMIT",
    "SOURCE_URL",
    "WHEEL_NAME",
    "WHEEL_VERSION",
    "check_detectron2_version",
    "describe_installed_detectron2",
]

logger = logging.getLogger(__name__)

# PyPI distribution (and version) of the wheel route.
WHEEL_NAME = "sal-detectron2"
WHEEL_VERSION = "0.7.2"
# Upstream repository and commit of the source route: a commit of upstream main of mid-2024, the
# period of the wheel (README "Installing detectron2" says how it was chosen and how to move it).
SOURCE_URL = "https://github.com/facebookresearch/detectron2.git"
SOURCE_COMMIT = "70f454304e1a38378200459dd2dbca0f0f4a5ab4"


def _installed_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _source_commit() -> Optional[str]:
    """Commit of a ``pip install git+URL@REF`` install of ``detectron2`` (pip's direct_url.json)."""
    try:
        text = metadata.distribution("detectron2").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    return json.loads(text).get("vcs_info", {}).get("commit_id")


def describe_installed_detectron2() -> tuple[Optional[bool], str]:
    """Whether the installed detectron2 is the pinned one, and what it is.

    Returns:
        ``(True, text)`` for the pinned wheel or commit, ``(False, text)`` for another version or
        commit, ``(None, text)`` when pip's metadata does not say (e.g. an editable checkout or a
        copy on ``PYTHONPATH``).
    """
    wheel = _installed_version(WHEEL_NAME)
    if wheel is not None:
        return wheel == WHEEL_VERSION, f"{WHEEL_NAME}=={wheel}"
    source = _installed_version("detectron2")
    if source is None:
        return None, "detectron2 without pip metadata"
    commit = _source_commit()
    if commit is None:
        return None, f"detectron2 {source} (commit unknown)"
    return commit == SOURCE_COMMIT, f"detectron2 {source} at commit {commit}"


@functools.cache
def check_detectron2_version() -> None:
    """Log (once per process) a warning when the installed detectron2 is not the tested one."""
    tested = f"{WHEEL_NAME}=={WHEEL_VERSION} or {SOURCE_URL}@{SOURCE_COMMIT}"
    matches, installed = describe_installed_detectron2()
    if matches is False:
        logger.warning(
            "Installed %s is not the detectron2 this project is tested with (%s); "
            "see README 'Installing detectron2'.",
            installed,
            tested,
        )
    elif matches is None:
        logger.info("Cannot tell which detectron2 is installed (%s); tested: %s", installed, tested)


def _main() -> None:
    parser = argparse.ArgumentParser(description="Print the pinned detectron2.")
    parser.add_argument(
        "field",
        choices=("wheel", "source", "commit", "shell"),
        help="wheel: NAME==VERSION; source: URL@COMMIT; commit: COMMIT; shell: variables to eval",
    )
    field = parser.parse_args().field
    if field == "wheel":
        print(f"{WHEEL_NAME}=={WHEEL_VERSION}")
    elif field == "source":
        print(f"{SOURCE_URL}@{SOURCE_COMMIT}")
    elif field == "commit":
        print(SOURCE_COMMIT)
    else:
        print(f"D2_WHEEL_NAME={WHEEL_NAME}")
        print(f"D2_WHEEL_VERSION={WHEEL_VERSION}")
        print(f"D2_SOURCE_URL={SOURCE_URL}")
        print(f"D2_SOURCE_COMMIT={SOURCE_COMMIT}")


if __name__ == "__main__":
    _main()
