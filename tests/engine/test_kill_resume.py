"""Kill and resume (issue 9, item 1): a tiny training run through ``tools/train_net.py`` is killed
with SIGKILL at 5 seeded points, one of them while a checkpoint's temporary file is half written,
and resumed with ``--resume`` each time; its final weights and optimizer state are bit-identical
to an uninterrupted run's (which uses a data-loader worker: the worker count changes nothing).
"""

import json
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch

from mask2former.engine.checkpoint import verify_checkpoint_file
from tests.helpers.train_runs import (
    differing_tensors,
    run_train_net,
    subprocess_env,
    tail,
    train_net_command,
)

MAX_ITER = 12
PERIOD = 2  # checkpoints after iterations 1, 3, 5, ... (model_0000001.pth, ...)
# dropout in the pixel decoder's encoder: the model also draws from torch's global RNG
OPTS = [
    *("SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", str(PERIOD)),
    *("MODEL.MASK_FORMER.DROPOUT", "0.1"),
]
KILL_SEED = 9


def last_complete_iteration(out: Path) -> int:
    """Iteration of the checkpoint ``last_checkpoint`` names (-1 without one)."""
    tag = out / "last_checkpoint"
    if not tag.exists():
        return -1
    return int(re.fullmatch(r"model_(\d+)\.pth", tag.read_text().strip()).group(1))


def progress_since(path: Path, offset: int) -> List[int]:
    if not path.exists():
        return []
    return [int(line.split()[1]) for line in path.read_text()[offset:].splitlines() if line]


def wait_until(condition, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"training ended (code {process.returncode}) before the kill")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(0.01)


def run_and_kill(
    out: Path, root: Path, kind: str, target: int, delay: float, resume: bool
) -> Tuple[int, str]:
    """Start a run; SIGKILL it ``delay`` s after an iteration >= ``target`` has started, or, for
    ``kind == "save"``, when checkpoint ``target``'s temporary file is half written. Returns the
    last iteration the run started and the log of the run."""
    progress = out / "progress.txt"
    offset = len(progress.read_text()) if progress.exists() else 0
    env: Dict[str, str] = {"M2F_TEST_PROGRESS": str(progress)}
    if kind == "save":
        env["M2F_TEST_PAUSE_SAVE"] = f"model_{target:07d}.pth"
    flags = ["--resume"] if resume else []
    log = out.parent / f"{out.name}-{kind}-{target}.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            train_net_command(out, flags, OPTS),
            env=subprocess_env(root, **env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        if kind == "save":
            wait_until(lambda: (out / "PAUSED").exists(), process)
        else:
            wait_until(lambda: any(i >= target for i in progress_since(progress, offset)), process)
            time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
    (out / "PAUSED").unlink(missing_ok=True)
    started = progress_since(progress, offset)
    return (started[-1] if started else -1), log.read_text()


def kill_plan(rng: random.Random) -> List[Tuple[str, int]]:
    """4 kills at random iterations and 1 during a random checkpoint's write, in run order."""
    steps = rng.sample(range(1, MAX_ITER - 1), 4)
    save = rng.randrange(PERIOD - 1, MAX_ITER - 2, PERIOD)  # an iteration ending with a save
    return sorted([("step", i) for i in steps] + [("save", save)], key=lambda k: (k[1], k[0]))


@pytest.mark.slow
def test_sigkill_at_five_points_then_resume_is_bit_identical(
    synthetic_root: Path, tmp_path: Path
) -> None:
    # the uninterrupted run, with a data-loader worker, alongside
    reference_log = open(tmp_path / "uninterrupted.log", "w")
    reference = subprocess.Popen(
        train_net_command(tmp_path / "uninterrupted", (), OPTS + ["DATALOADER.NUM_WORKERS", "1"]),
        env=subprocess_env(synthetic_root),
        stdout=reference_log,
        stderr=subprocess.STDOUT,
    )

    out = tmp_path / "killed"
    rng = random.Random(KILL_SEED)
    report: List[Dict[str, object]] = []
    for n, (kind, target) in enumerate(kill_plan(rng)):
        start = last_complete_iteration(out) + 1
        if kind == "save" and target < start:  # an earlier kill ran past it: the next save
            target = start + (PERIOD - 1 - start % PERIOD)
        delay = rng.uniform(0.0, 0.15) if kind == "step" else 0.0
        reached, log = run_and_kill(out, synthetic_root, kind, target, delay, resume=n > 0)
        assert f"Starting training from iteration {start}" in log, tail(log)
        report.append({"kind": kind, "target": target, "resumed_at": start, "killed_in": reached})
        tag_file = out / "last_checkpoint"
        tag = tag_file.read_text().strip() if tag_file.exists() else None
        # whatever the moment, every file with a checkpoint's name is complete
        for checkpoint in out.glob("model_*.pth"):
            verify_checkpoint_file(str(checkpoint))
        if kind == "save":
            torn = list(out.glob(f".model_{target:07d}.pth.*.tmp"))
            assert len(torn) == 1 and not (out / f"model_{target:07d}.pth").exists()
            assert tag != f"model_{target:07d}.pth"
            assert 0 < torn[0].stat().st_size
    assert [r["kind"] for r in report].count("save") == 1

    final = run_train_net(out, synthetic_root, flags=["--resume"], opts=OPTS)
    assert final.returncode == 0, tail(final.stdout)
    assert not list(out.glob(".*.tmp")), "the torn temporary file was not cleaned up"
    (tmp_path / "kill_report.json").write_text(json.dumps(report))
    print("kill points:", report)
    assert reference.wait(timeout=300) == 0, tail((tmp_path / "uninterrupted.log").read_text())
    reference_log.close()

    ours = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    theirs = torch.load(
        tmp_path / "uninterrupted/model_final.pth", map_location="cpu", weights_only=True
    )
    assert ours["iteration"] == theirs["iteration"] == MAX_ITER - 1
    assert differing_tensors(ours["model"], theirs["model"]) == []
    optimizer = ours["trainer"]["_trainer"]["optimizer"]
    reference_optimizer = theirs["trainer"]["_trainer"]["optimizer"]
    for key, state in reference_optimizer["state"].items():
        assert differing_tensors(optimizer["state"][key], state) == [], key
    assert ours["trainer"]["hooks"] == theirs["trainer"]["hooks"]  # LR schedule and seed
