"""Long runs (issue 9, item 6): the training data loader does not leak file handles, counted in
``/proc/<pid>/fd`` of the training process and of its data-loader workers over iterations. (The
memory growth over 300 iterations is measured by ``tools/benchmarks/bench_train_memory.py``.)"""

import os
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterable, Set

import pytest

from mask2former.data.samplers import IterationBatches, IterationBatchLoader
from mask2former.engine import Trainer
from tests.helpers.scripts import load_benchmark_module
from tests.helpers.train_runs import tiny_config

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")


def load_bench() -> ModuleType:
    return load_benchmark_module("bench_train_memory")


BENCH = load_bench()  # its /proc readers: children(pid), open_fds(pid)


def files_of(pid: int) -> int:
    """Open descriptors of ``pid`` except shared memory (``/dev/shm``): batches from a loader
    worker arrive as shared-memory descriptors, as many at a time as batches are prefetched."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd") if Path(f"/proc/{pid}/fd").is_dir() else []:
        try:
            count += not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/dev/shm/")
        except OSError:  # closed meanwhile
            pass
    return count


def open_files(ignored: Set[int] = frozenset()) -> int:
    """Descriptors (:func:`files_of`) of this process and of its children (the data-loader
    workers), except the children in ``ignored`` (processes that earlier tests left, which may
    close files meanwhile)."""
    pids = [os.getpid(), *(p for p in BENCH.children(os.getpid()) if p not in ignored)]
    return sum(files_of(pid) for pid in pids)


def fd_growth(loader: Iterable[Any], warmup: int = 5, iterations: int = 40) -> int:
    earlier = set(BENCH.children(os.getpid()))
    batches = iter(loader)
    for _ in range(warmup):
        next(batches)
    before = open_files(earlier)
    for _ in range(iterations):
        next(batches)
    after = open_files(earlier)
    del batches
    return after - before


def test_training_loader_with_a_worker_keeps_its_file_handles(
    synthetic_datasets: Path, tmp_path: Path
) -> None:
    """Over 40 iterations a leak of one file per sample would add 40 or more descriptors. The
    prefetched batches' shared-memory descriptors (+10 and +20 in two CI runs when counted) are
    left out of the count (:func:`files_of`)."""
    cfg = tiny_config(tmp_path, "DATALOADER.NUM_WORKERS", "1")
    assert fd_growth(Trainer.build_train_loader(cfg), iterations=40) < 20


def test_the_count_sees_a_leak_in_a_worker(tmp_path: Path) -> None:
    """The same measurement on a mapper that opens a file per sample and never closes it."""
    leaked = []

    def leaking_mapper(record: Dict[str, Any]) -> Dict[str, Any]:
        leaked.append(open(tmp_path / "data.bin", "wb"))  # never closed: the leak under test
        return dict(record)

    dataset = [{"index": i} for i in range(10)]
    batches = IterationBatches(dataset, leaking_mapper, seed=0, total_batch_size=2)
    loader = IterationBatchLoader(batches, num_workers=1, start_iter=0)
    assert fd_growth(loader, iterations=20) >= 20
