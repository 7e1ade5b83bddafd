# Copyright (c) the mask2former authors.
"""Checkpoints that survive being killed, and loading that names the file at fault.

:class:`Checkpointer` is detectron2's ``DetectionCheckpointer`` (same files, same keys, model-zoo
``.pkl`` conversion, DDP handling) with its public methods made safe:

- ``save`` writes through :func:`atomic_write`: a temporary file in the same directory, flushed
  and fsynced, renamed over the target with ``os.replace`` and the directory fsynced; then
  ``last_checkpoint`` is replaced the same way, last. A process killed at any moment leaves either
  the previous checkpoint or the complete new one, never a torn file under a checkpoint's name.
- ``load`` first checks the file (:func:`verify_checkpoint_file`): empty, truncated, corrupt
  (every zip record's CRC-32, which ``torch.load`` does not check: it loads flipped bytes
  silently) or holding Python objects that ``torch.load(weights_only=True)`` refuses: a
  :class:`CheckpointError` naming the file and what is wrong. A ``.pkl`` file (detectron2's
  model-zoo format, read with ``pickle``) logs, once per file, that unpickling can run code.
- ``resume_or_load`` with ``resume=True`` falls back from an unreadable last checkpoint to the
  most recent readable one in the directory, with a warning naming both.

Checkpoints written by training hold only tensors, numbers, strings and containers of them, so
they pass the ``weights_only`` check.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import socket
import uuid
import zipfile
import zlib
from typing import Any, Callable, Dict, List, Optional, Set

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils import comm

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "atomic_write",
    "verify_checkpoint_file",
]

LAST_CHECKPOINT = "last_checkpoint"
# Suffix of the temporary files of atomic_write (".<name>.<host>.<pid>.<random>.tmp").
TEMP_SUFFIX = ".tmp"
# .pkl files already warned about in this process.
_WARNED_PICKLES: Set[str] = set()


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be loaded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Cannot load checkpoint {path}: {reason}")
        self.path = path
        self.reason = reason


def fsync_directory(directory: str) -> None:
    """fsync ``directory`` so that a rename inside it survives a crash (no-op where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, write: Callable[[Any], None]) -> None:
    """Create or replace ``path`` with what ``write(binary_file)`` writes, atomically.

    The data goes to a temporary file next to ``path`` (same file system), which is flushed,
    fsynced and renamed over ``path`` (``os.replace``); the directory is then fsynced. Readers and
    a process killed at any point see the old file or the complete new one. On an error (e.g. a
    full disk) the temporary file is removed and the error raised.
    """
    directory = os.path.dirname(os.path.abspath(path))
    owner = f"{socket.gethostname()}.{os.getpid()}"
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{owner}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode as open(): umask
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _weights_only_refusal(error: BaseException) -> str:
    """The reason in torch's weights_only error, without its advice to disable the check."""
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
    return match.group(1).strip() if match else _first_line(error)


def _check_pickle(path: str) -> None:
    if path not in _WARNED_PICKLES:
        _WARNED_PICKLES.add(path)
        logger.warning(
            "Loading %s with pickle (detectron2's .pkl model-zoo format): unpickling a file can "
            "run arbitrary code. Only load .pkl files from sources you trust.",
            path,
        )
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b".":  # every pickle ends with the STOP opcode
            raise CheckpointError(path, "truncated: a pickle file ends with a STOP opcode ('.')")


def _check_torch_file(path: str) -> None:
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad_record = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
            raise CheckpointError(path, f"corrupt zip archive ({_first_line(e)})") from e
        if bad_record is not None:
            raise CheckpointError(
                path, f"corrupt: the data of record {bad_record!r} fails its CRC-32 check"
            )
        mmap = True  # the CRC check has read the data; unpickling needs only the structure
    else:
        with open(path, "rb") as f:
            head = f.read(2)
        if head == b"PK":
            raise CheckpointError(
                path,
                "truncated: it starts as a zip archive (what torch.save writes) but its end "
                "(the zip central directory) is missing; was it copied or written incompletely?",
            )
        if head[:1] != b"\x80":
            raise CheckpointError(
                path, "not a checkpoint: neither a zip archive (torch.save) nor a pickle"
            )
        mmap = False  # torch's legacy (pre-1.6) format
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            path,
            "it holds Python objects that safe loading (torch.load(weights_only=True)) refuses: "
            f"{_weights_only_refusal(e)}. Checkpoints should contain only tensors, numbers, "
            "strings and containers of them; re-save the state dicts of a trusted file",
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(path, f"unreadable by torch.load ({_first_line(e)})") from e


def verify_checkpoint_file(path: str) -> None:
    """Check that ``path`` is a complete checkpoint that loads safely; raise otherwise.

    ``.pkl``: logs (once per file) that unpickling can run code, and checks that the pickle is
    not truncated. Other files (``torch.save`` output): zip structure and every record's CRC-32,
    then ``torch.load(weights_only=True)`` of the structure (tensor data memory-mapped).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: naming ``path`` and what is wrong with it.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint {path} not found")
    if os.path.getsize(path) == 0:
        raise CheckpointError(path, "the file is empty (0 bytes)")
    if path.endswith(".pkl"):
        _check_pickle(path)
    else:
        _check_torch_file(path)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _iteration_of(name: str) -> int:
    match = re.fullmatch(r".*_(\d+)\.pth", name)
    return int(match.group(1)) if match else -1


class Checkpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` with atomic saves, verified loads and resume fallback (see the
    module docstring). Constructed like it: ``Checkpointer(model, save_dir, **checkpointables)``.
    """

    def _is_local(self) -> bool:
        return "://" not in self.save_dir

    def save(self, name: str, **kwargs: Any) -> None:
        """Write ``<save_dir>/<name>.pth`` (model, checkpointables, ``kwargs``) atomically, then
        point ``last_checkpoint`` at it. Only on the process that saves (the main one)."""
        if not self.save_dir or not self.save_to_disk:
            return
        if not self._is_local():  # e.g. a remote PathManager handler: no rename/fsync there
            super().save(name, **kwargs)
            return
        data: Dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        logger.info("Saving checkpoint to %s", path)
        os.makedirs(self.save_dir, exist_ok=True)
        atomic_write(path, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Replace ``last_checkpoint`` atomically with the given file name."""
        if not self._is_local():
            super().tag_last_checkpoint(last_filename_basename)
            return
        path = os.path.join(self.save_dir, LAST_CHECKPOINT)
        atomic_write(path, lambda f: f.write(last_filename_basename.encode("utf-8")))

    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        """``DetectionCheckpointer.load`` after :func:`verify_checkpoint_file` on the local file.

        Raises:
            CheckpointError: the file is empty, truncated, corrupt or not safely loadable.
            FileNotFoundError: the file does not exist (single process; with several, detectron2
                loads it where it exists).
        """
        if path:
            local = self.path_manager.get_local_path(path.split("?")[0])
            if os.path.isfile(local) or comm.get_world_size() == 1:
                verify_checkpoint_file(local)
        return self._load_verified(path, checkpointables)

    def _load_verified(self, path: str, checkpointables: Optional[List[str]]) -> Dict[str, Any]:
        try:
            return super().load(path, checkpointables)
        except (pickle.UnpicklingError, EOFError) as e:  # a .pkl corrupt inside
            raise CheckpointError(path, f"corrupt pickle ({_first_line(e)})") from e

    def candidate_checkpoints(self) -> List[str]:
        """Checkpoints to resume from, best first: the one ``last_checkpoint`` names, then the
        other ``*.pth`` files of ``save_dir``, most recently written first."""
        last = os.path.basename(self.get_checkpoint_file()) if self.has_checkpoint() else ""
        others = sorted(
            (f for f in self.get_all_checkpoint_files() if os.path.basename(f) != last),
            key=lambda f: (os.path.getmtime(f), _iteration_of(os.path.basename(f))),
            reverse=True,
        )
        return ([os.path.join(self.save_dir, last)] if last else []) + others

    def remove_stale_temporary_files(self) -> None:
        """Delete the temporary files that saves killed on this host left in ``save_dir`` (their
        writing process is gone); a write in progress, or from another host, is left alone."""
        if not (self.save_to_disk and self._is_local() and os.path.isdir(self.save_dir)):
            return
        host = socket.gethostname()
        for name in os.listdir(self.save_dir):
            match = re.fullmatch(rf"\..+\.{re.escape(host)}\.(\d+)\.[0-9a-f]+\.tmp", name)
            if match is None or _process_exists(int(match.group(1))):
                continue
            logger.info("Removing %s, left by an interrupted checkpoint write", name)
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.save_dir, name))

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        """Resume from the last readable checkpoint of ``save_dir`` if ``resume`` and one is
        tagged; otherwise load only the model from ``path`` (``MODEL.WEIGHTS``).

        An unreadable ``last_checkpoint`` target is skipped with a warning naming it and the
        checkpoint used instead.

        Raises:
            CheckpointError: ``resume`` and no checkpoint in ``save_dir`` is readable.
        """
        if resume:
            self.remove_stale_temporary_files()
        if not (resume and self.has_checkpoint()):
            return self.load(path, checkpointables=[])
        candidates = self.candidate_checkpoints()
        problems = []
        for candidate in candidates:
            try:
                verify_checkpoint_file(candidate)
            except (CheckpointError, FileNotFoundError) as e:
                problems.append(str(e))
                logger.warning("%s; trying the previous checkpoint.", e)
                continue
            if problems:
                logger.warning("Resuming from %s instead of %s.", candidate, candidates[0])
            return self._load_verified(candidate, None)
        raise CheckpointError(
            candidates[0] if candidates else os.path.join(self.save_dir, LAST_CHECKPOINT),
            "no readable checkpoint to resume from in "
            f"{self.save_dir}: " + "; ".join(problems or ["last_checkpoint names no file"]),
        )
