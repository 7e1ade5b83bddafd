"""Runs ``tools/train_net.py`` (its ``invoke_main``, same arguments) with observation points for
the reliability tests. Not a test module; the tests start it as a subprocess.

Environment variables (each optional):
    M2F_TEST_PROGRESS: file to which every process appends "<rank> <iteration>" before each step.
    M2F_TEST_LOSSES: file to which the main process writes, after training, the raw loss terms of
        every iteration (``{name: [[iteration, value], ...]}``, from detectron2's event storage,
        i.e. averaged over processes).
    M2F_TEST_THREADS: torch threads per process (default 1).
    M2F_TEST_RESULTS: file to which the main process writes what ``main`` returned (the
        evaluation results), as JSON.
    M2F_TEST_PAUSE_SAVE: a checkpoint name (e.g. ``model_0000003.pth``); its write (to the file
        itself or to a temporary file for it) stops after half of the file, creates
        ``<that file's directory>/PAUSED`` and sleeps until killed.

Spawned worker processes (``--num-gpus N``) import this file again as ``__mp_main__``, so the
patches below apply there too.
"""

import io
import json
import os
import sys
import time
from pathlib import Path

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import train_net  # noqa: E402  (tools/train_net.py, importable by spawned workers)

from mask2former.engine import Trainer  # noqa: E402

torch.set_num_threads(int(os.environ.get("M2F_TEST_THREADS", "1")))  # the same in every run
PROGRESS = os.environ.get("M2F_TEST_PROGRESS")
LOSSES = os.environ.get("M2F_TEST_LOSSES")
PAUSE_SAVE = os.environ.get("M2F_TEST_PAUSE_SAVE")
RESULTS = os.environ.get("M2F_TEST_RESULTS")


class Observer(HookBase):
    def before_step(self) -> None:
        if PROGRESS:
            with open(PROGRESS, "a") as f:
                f.write(f"{comm.get_rank()} {self.trainer.iter}\n")

    def after_train(self) -> None:
        if LOSSES and comm.is_main_process():
            history = self.trainer.storage.histories()
            losses = {
                name: [[it, value] for value, it in h.values()]
                for name, h in history.items()
                if name.startswith("loss_") or name == "total_loss"
            }
            Path(LOSSES).write_text(json.dumps(losses))


_build_hooks = Trainer.build_hooks


def build_hooks(self):
    return _build_hooks(self) + [Observer()]


Trainer.build_hooks = build_hooks

_torch_save = torch.save


def pausing_save(obj, f, *args, **kwargs):
    """torch.save that, for PAUSE_SAVE (or its temporary file), writes half and waits."""
    target = ""
    if PAUSE_SAVE and hasattr(f, "fileno"):
        target = os.path.basename(os.readlink(f"/proc/self/fd/{f.fileno()}"))
    if target != PAUSE_SAVE and not target.startswith(f".{PAUSE_SAVE}."):  # direct or temporary
        return _torch_save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    _torch_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    os.fsync(f.fileno())
    directory = os.path.dirname(os.readlink(f"/proc/self/fd/{f.fileno()}"))
    Path(directory, "PAUSED").write_text(target)
    while True:
        time.sleep(1)


torch.save = pausing_save

_main = train_net.main


def main_writing_results(args):
    results = _main(args)
    if RESULTS and comm.is_main_process():
        Path(RESULTS).write_text(json.dumps(results))
    return results


train_net.main = main_writing_results  # what the launched main_then_finish calls

if __name__ == "__main__":
    train_net.invoke_main()
