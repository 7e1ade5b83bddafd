"""The reproducible training loader (``mask2former.data.samplers``): which item and which random
numbers slot j of iteration i gets depend only on (seed, i, j), not on the number of data-loader
workers, the number of processes or where the run (re)started."""

import logging
import random
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
import torch
from detectron2.utils.events import EventStorage

from mask2former.data.samplers import IterationBatches, IterationBatchLoader

DATASET = [{"index": i} for i in range(10)]
BATCH = 4


def recording_mapper(record: Dict[str, Any]) -> Dict[str, Any]:
    """The item and one draw of each global RNG an augmentation could use."""
    return {
        "index": record["index"],
        "draws": (random.random(), float(np.random.rand()), float(torch.rand(1))),
    }


def take(loader: IterationBatchLoader, iterations: int) -> List[List[Dict[str, Any]]]:
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == iterations:
            return batches
    raise AssertionError("the loader ended")


def loader(
    seed: int = 0, workers: int = 0, rank: int = 0, world: int = 1, start: Optional[int] = 0
) -> IterationBatchLoader:
    batches = IterationBatches(
        DATASET, recording_mapper, seed=seed, total_batch_size=BATCH, rank=rank, world_size=world
    )
    return IterationBatchLoader(batches, num_workers=workers, start_iter=start)


@pytest.fixture(scope="module")
def reference() -> List[List[Dict[str, Any]]]:
    return take(loader(), 8)


def test_data_loader_workers_change_nothing(reference) -> None:
    assert take(loader(workers=2), 8) == reference
    assert take(loader(workers=1), 8) == reference


def test_processes_split_each_global_batch(reference) -> None:
    ranks = [take(loader(rank=r, world=2), 8) for r in range(2)]
    merged = [first + second for first, second in zip(*ranks)]
    assert merged == reference
    assert all(len(batch) == BATCH // 2 for batch in ranks[0])


def test_a_restart_continues_the_same_sequence(reference) -> None:
    assert take(loader(start=5), 3) == reference[5:8]
    with EventStorage(start_iter=6):  # in a trainer: where its iteration counter is
        assert take(loader(start=None), 2) == reference[6:8]


def test_each_epoch_is_a_permutation_and_seeds_differ(reference) -> None:
    order = [sample["index"] for batch in take(loader(), 10) for sample in batch]
    epochs = [order[i : i + len(DATASET)] for i in range(0, 40, len(DATASET))]
    assert all(sorted(epoch) == list(range(len(DATASET))) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == len(epochs)
    other = take(loader(seed=1), 8)
    assert [s["index"] for b in other for s in b] != [s["index"] for b in reference for s in b]
    draws = [s["draws"] for b in reference for s in b]
    assert len(set(draws)) == len(draws)  # every sample gets its own random numbers


def test_model_seed_per_sample(reference) -> None:
    seeds = [sample["sample_seed"] for batch in reference for sample in batch]
    assert len(set(seeds)) == len(seeds) and all(isinstance(s, int) for s in seeds)


def test_mapping_leaves_the_caller_random_state_alone() -> None:
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    expected = (torch.rand(1), np.random.rand(), random.random())
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    take(loader(), 3)
    assert (torch.rand(1), np.random.rand(), random.random()) == expected


def test_skipped_samples_are_replaced_deterministically(caplog) -> None:
    def skip_even(record: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return None if record["index"] % 2 == 0 else recording_mapper(record)

    def run() -> List[List[Dict[str, Any]]]:
        batches = IterationBatches(DATASET, skip_even, seed=0, total_batch_size=BATCH)
        return take(IterationBatchLoader(batches, start_iter=0), 5)

    with caplog.at_level(logging.WARNING, logger="mask2former.data.samplers"):
        first = run()
    assert first == run()
    assert all(sample["index"] % 2 == 1 for batch in first for sample in batch)
    assert "skipped dataset item" in caplog.text


def test_a_mapper_that_always_skips_is_an_error_not_a_hang() -> None:
    batches = IterationBatches(DATASET, lambda record: None, seed=0, total_batch_size=BATCH)
    never = IterationBatchLoader(batches, start_iter=0)
    with pytest.raises(RuntimeError, match="returned None for 100 dataset items"):
        take(never, 1)
