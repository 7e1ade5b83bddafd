"""TEST.CPU_KEEP_FREED_MEMORY (mask2former/utils/cpu_memory.py): after keep_freed_cpu_memory(),
freeing and allocating a large tensor again no longer page-faults it in; the model applies it at
its first CPU inference when the key is on, and not otherwise. Each case runs in a fresh
process: the setting is process-wide. (The trainer's SOLVER.CPU_KEEP_FREED_MEMORY:
tests/engine/test_trainer_cpu_memory.py.)"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAULTS = """
import resource, torch
def faults_per_round():
    for _ in range(8):  # warm-up: the heap grows to hold the block (a few rounds with glibc 2.36)
        torch.empty(2 ** 26).fill_(1.0)  # 256 MB, freed at once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        torch.empty(2 ** 26).fill_(1.0)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
"""


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def is_glibc() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    except OSError:
        return False


@pytest.mark.skipif(not is_glibc(), reason="the setting exists for glibc's malloc only")
def test_freed_memory_is_reused_without_page_faults() -> None:
    out = run(
        FAULTS
        + """
default = faults_per_round()
from mask2former.utils.cpu_memory import keep_freed_cpu_memory
assert keep_freed_cpu_memory() and keep_freed_cpu_memory()  # idempotent
print(default, faults_per_round())
"""
    )
    default, kept = map(float, out.split())
    pages = 2**28 / 4096  # a 256 MB tensor in 4 KB pages
    assert default > 0.5 * pages  # glibc maps and unmaps it every time
    assert kept < 0.01 * pages


@pytest.mark.parametrize("keep", [True, False])
def test_model_applies_it_at_its_first_cpu_inference(keep: bool) -> None:
    out = run(
        f"""
import torch
from detectron2.modeling import build_model
import mask2former
from mask2former.config import build_config
from mask2former.utils import cpu_memory
cfg = build_config(
    "configs/quickstart/m2f_synthetic_R18ish_panoptic.yaml",
    ["MODEL.DEVICE", "cpu", "TEST.CPU_KEEP_FREED_MEMORY", "{keep}"],
)
model = build_model(cfg)
model.train()
image = torch.zeros(3, 64, 64, dtype=torch.uint8)
before = cpu_memory._state["applied"]
model.eval()
with torch.no_grad():
    model([{{"image": image}}])
print(before, cpu_memory._state["applied"])
"""
    )
    before, after = out.split()
    assert before == "None"
    assert after == (str(is_glibc()) if keep else "None")
