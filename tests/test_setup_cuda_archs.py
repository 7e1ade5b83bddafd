"""setup.py's default TORCH_CUDA_ARCH_LIST: the visible GPU's architecture, else every GPU
generation researchers use (V100 7.0 ... H100 9.0, PTX for the newest) that nvcc can compile."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import setuptools
import torch

SETUP = Path(__file__).resolve().parents[1] / "setup.py"


@pytest.fixture
def setup_py(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """setup.py as a module, without running setup()."""
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: None)
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    spec = importlib.util.spec_from_file_location("setup_under_test", SETUP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_every_generation_with_ptx(setup_py, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(
        setup_py, "_nvcc_archs", lambda: set()
    )  # nvcc's list unknown: the whole default list
    assert setup_py.cuda_arch_list() == "7.0;7.5;8.0;8.6;8.9;9.0+PTX"
    # nvcc 13 dropped 7.0: what it cannot compile is left out instead of failing the build
    supported = {"7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"}
    monkeypatch.setattr(setup_py, "_nvcc_archs", lambda: supported)
    assert setup_py.cuda_arch_list() == "7.5;8.0;8.6;8.9;9.0+PTX"


def test_the_visible_gpus_architecture(setup_py, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (7, 0))
    assert setup_py.cuda_arch_list() == "7.0+PTX"


def test_the_variable_wins(setup_py, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0")
    assert setup_py.cuda_arch_list() == "8.0"


def test_nvcc_arch_names_are_parsed(setup_py, monkeypatch, tmp_path) -> None:
    nvcc = tmp_path / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text("#!/bin/sh\necho compute_75 compute_80 compute_90 compute_100 compute_120\n")
    nvcc.chmod(0o755)
    monkeypatch.setattr(setup_py, "CUDA_HOME", str(tmp_path))
    assert setup_py._nvcc_archs() == {"7.5", "8.0", "9.0", "10.0", "12.0"}
