"""Checkpoint writing and loading (issue 9, items 1 and 5): atomic writes, a clear error naming the
file for every kind of damaged checkpoint, the fallback of ``--resume`` to the previous good
checkpoint, ``weights_only`` loading and the warning for pickle (.pkl) files."""

import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Dict

import pytest
import torch
from torch import nn

from mask2former.engine import Checkpointer, CheckpointError, Trainer
from mask2former.engine.checkpoint import atomic_write, verify_checkpoint_file
from tests.helpers.train_runs import tiny_config


class Counter:
    """A checkpointable like the trainer: a state dict of plain values."""

    def __init__(self) -> None:
        self.iteration = 0

    def state_dict(self) -> Dict[str, int]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.iteration = state["iteration"]


def checkpointer(save_dir: Path, seed: int = 0) -> Checkpointer:
    torch.manual_seed(seed)
    return Checkpointer(nn.Linear(64, 64), str(save_dir), counter=Counter())


def save_at(ckpt: Checkpointer, iteration: int) -> Path:
    ckpt.checkpointables["counter"].iteration = iteration
    ckpt.save(f"model_{iteration:07d}")
    return Path(ckpt.save_dir) / f"model_{iteration:07d}.pth"


class Custom:
    """Not a plain type: safe loading refuses it."""


def flip_tensor_byte(path: Path, out: Path) -> None:
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        record = next(i for i in archive.infolist() if "/data/" in i.filename)
    start = record.header_offset + 30 + len(record.filename.encode()) + len(record.extra)
    data[start + record.compress_size // 2] ^= 0xFF
    out.write_bytes(bytes(data))


# name -> (how to damage a good checkpoint at src into dst, words the error must contain)
DAMAGES: Dict[str, tuple] = {
    "truncated": (
        lambda src, dst: dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2]),
        ["truncated"],
    ),
    "empty": (lambda src, dst: dst.write_bytes(b""), ["empty"]),
    "flipped byte": (flip_tensor_byte, ["corrupt", "CRC"]),
    "not a checkpoint": (lambda src, dst: dst.write_text("<html>404</html>"), ["not a checkpoint"]),
    "custom object": (
        lambda src, dst: torch.save({"model": {}, "extra": Custom()}, dst),
        ["weights_only", "Custom"],
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_checkpoint_error_names_the_file_and_the_fault(damage: str, tmp_path: Path) -> None:
    good = save_at(checkpointer(tmp_path / "good"), 3)
    verify_checkpoint_file(str(good))
    make, words = DAMAGES[damage]
    bad = tmp_path / "bad.pth"
    make(good, bad)
    target = checkpointer(tmp_path / "load")
    with pytest.raises(CheckpointError) as info:
        target.load(str(bad))
    message = str(info.value)
    assert str(bad) in message
    for word in words:
        assert word in message, message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing_here.pth"):
        checkpointer(tmp_path).load(str(tmp_path / "nothing_here.pth"))


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "last_checkpoint"
    atomic_write(str(path), lambda f: f.write(b"model_0000001.pth"))

    def half_then_fail(f) -> None:
        f.write(b"model_00")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(str(path), half_then_fail)
    assert path.read_bytes() == b"model_0000001.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint"]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert path.stat().st_mode == plain.stat().st_mode  # permissions as open() gives (umask)


def test_save_writes_the_checkpoint_then_tags_it(tmp_path: Path, monkeypatch) -> None:
    ckpt = checkpointer(tmp_path)
    save_at(ckpt, 1)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(
        os, "replace", lambda a, b: (replaced.append(Path(b).name), real_replace(a, b))
    )
    save_at(ckpt, 3)
    assert replaced == ["model_0000003.pth", "last_checkpoint"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000003.pth"
    state = torch.load(tmp_path / "model_0000003.pth", weights_only=True)
    assert state["counter"] == {"iteration": 3}


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "empty"])
def test_resume_falls_back_to_the_previous_good_checkpoint(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = checkpointer(tmp_path)
    save_at(writer, 1)
    previous = save_at(writer, 3)
    last = save_at(writer, 5)
    make, _ = DAMAGES[damage]
    good_copy = tmp_path.parent / f"{tmp_path.name}-copy.pth"
    good_copy.write_bytes(last.read_bytes())
    make(good_copy, last)

    reader = checkpointer(tmp_path, seed=1)
    with caplog.at_level(logging.WARNING, logger="mask2former.engine.checkpoint"):
        reader.resume_or_load("", resume=True)
    assert reader.checkpointables["counter"].iteration == 3
    assert torch.equal(reader.model.weight, writer.model.weight)
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert str(last) in warnings and str(previous) in warnings


def test_resume_with_no_readable_checkpoint_is_an_error(tmp_path: Path) -> None:
    only = save_at(checkpointer(tmp_path), 1)
    only.write_bytes(only.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="no readable checkpoint") as info:
        checkpointer(tmp_path).resume_or_load("", resume=True)
    assert str(only) in str(info.value)


def test_pkl_model_zoo_file_loads_with_a_warning_once_per_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = nn.Linear(64, 64)
    zoo = {"model": {k: v.numpy() for k, v in source.state_dict().items()}, "__author__": "zoo"}
    paths = [tmp_path / "a.pkl", tmp_path / "b.pkl"]
    for path in paths:
        path.write_bytes(pickle.dumps(zoo))
    with caplog.at_level(logging.WARNING, logger="mask2former.engine.checkpoint"):
        for path in paths + paths:
            target = checkpointer(tmp_path / "out", seed=1)
            target.load(str(path))
            assert torch.equal(target.model.weight, source.weight)
    warnings = [r.getMessage() for r in caplog.records if "arbitrary code" in r.getMessage()]
    assert len(warnings) == 2 and str(paths[0]) in warnings[0] and str(paths[1]) in warnings[1]

    truncated = tmp_path / "c.pkl"
    truncated.write_bytes(pickle.dumps(zoo)[:-10])
    with pytest.raises(CheckpointError, match="truncated") as info:
        checkpointer(tmp_path / "out").load(str(truncated))
    assert str(truncated) in str(info.value)


def test_trainer_checkpoints_load_with_weights_only_and_resume_skips_a_torn_one(
    synthetic_datasets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    opts = ["SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2"]
    trainer = Trainer(tiny_config(tmp_path, *opts))
    trainer.resume_or_load(resume=False)
    trainer.train()
    final = tmp_path / "model_final.pth"
    state = torch.load(final, map_location="cpu", weights_only=True)
    assert state["iteration"] == 3 and "optimizer" in state["trainer"]["_trainer"]
    assert state["trainer"]["hooks"]["IterationSeeds"] == {"seed": 0}
    del trainer

    final.write_bytes(final.read_bytes()[:-1000])  # e.g. copied incompletely
    resumed = Trainer(tiny_config(tmp_path, *opts))
    with caplog.at_level(logging.WARNING, logger="mask2former.engine.checkpoint"):
        resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 4  # from model_0000003.pth, the checkpoint before
    assert str(final) in caplog.text and "model_0000003.pth" in caplog.text


def test_corrupt_model_weights_is_an_error_naming_the_file(
    synthetic_datasets: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "R-50.pth"
    weights.write_bytes(b"PK\x03\x04" + bytes(100))  # the start of a zip, cut short
    trainer = Trainer(tiny_config(tmp_path / "out", "MODEL.WEIGHTS", str(weights)))
    with pytest.raises(CheckpointError, match="truncated") as info:
        trainer.resume_or_load(resume=False)
    assert str(weights) in str(info.value)
