# Copyright (c) the mask2former authors.
"""Training data whose order and augmentation are a function of (SEED, iteration, slot).

detectron2's training loader draws its order from an infinite shuffled stream and each worker's
augmentations from a worker seed: after ``--resume`` the stream starts over, so a resumed run sees
other images and other crops than an uninterrupted one, and the number of processes or workers
changes both. Here, sample ``slot`` (0 .. ``SOLVER.IMS_PER_BATCH`` - 1) of the global batch of
``iteration`` is

- the dataset item at position ``iteration * IMS_PER_BATCH + slot`` of an endless sequence of
  epochs, each a permutation of the dataset drawn from ``(SEED, epoch)``;
- mapped (read, augmented) right after Python's ``random``, numpy's global RNG (which detectron2's
  augmentations use) and torch's are seeded from ``(SEED, iteration, slot)``, inside
  :func:`~mask2former.utils.seeding.isolated_global_rngs` so that the caller's RNGs are untouched;
- given ``sample_seed``, a seed for the model's own random draws on that image (the point
  sampling of the matcher and of the mask losses).

Process ``rank`` of ``world_size`` maps slots ``rank * b .. rank * b + b - 1`` (``b`` =
``IMS_PER_BATCH / world_size``); data-loader worker ``w`` of ``W`` maps iterations ``w, w + W, ...``
and the ``DataLoader`` returns them in order. The loader starts at the iteration the trainer is at
when it first asks for data (detectron2's event storage), i.e. ``start_iter`` after a resume.

Differences from detectron2's loader: no aspect-ratio grouping (Mask2Former's training mappers
crop or pad to a fixed size, so grouping changes nothing there); a mapper returning None (a
skipped sample) is replaced by another item drawn from ``(SEED, iteration, slot, attempt)``.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from detectron2.utils.events import get_event_storage
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mask2former.utils.seeding import (
    SAMPLE_AUGMENTATION,
    SAMPLE_MODEL,
    SAMPLE_ORDER,
    SAMPLE_RETRY,
    derive_seed,
    isolated_global_rngs,
    seed_global_rngs,
)

logger = logging.getLogger(__name__)

__all__ = ["IterationBatchLoader", "IterationBatches", "MAX_MAP_ATTEMPTS", "current_iteration"]

# Replacements tried for one slot when the mapper keeps returning None.
MAX_MAP_ATTEMPTS = 100


def current_iteration() -> int:
    """The iteration of the running detectron2 trainer (its event storage), or 0 outside one."""
    try:
        return get_event_storage().iter
    except AssertionError:  # detectron2: "get_event_storage() has to be called inside ..."
        return 0


class IterationBatches(IterableDataset):
    """This process's share of the global batch of every iteration from ``start_iter`` on.

    Yields lists of ``total_batch_size // world_size`` mapped dicts (the mapper's output plus
    ``sample_seed``: int). See the module docstring for how items and seeds are chosen.
    """

    def __init__(
        self,
        dataset: Sequence[Dict[str, Any]],
        mapper: Callable[[Dict[str, Any]], Optional[Dict[str, Any]]],
        *,
        seed: int,
        total_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        start_iter: int = 0,
    ) -> None:
        """
        Args:
            dataset: indexable dataset dicts (each access returns a copy the mapper may modify,
                e.g. detectron2's ``DatasetFromList``).
            mapper: dataset dict -> model input dict, or None to skip the item.
            seed: ``SEED`` (>= 0).
            total_batch_size: images per iteration over all processes (``SOLVER.IMS_PER_BATCH``).
            rank, world_size: this process and the number of processes.
            start_iter: the first iteration to yield.
        """
        if seed < 0:
            raise ValueError(f"IterationBatches needs a seed >= 0, got {seed}")
        if len(dataset) == 0:
            raise ValueError("IterationBatches: the training dataset is empty")
        if total_batch_size <= 0 or total_batch_size % world_size:
            raise ValueError(
                f"SOLVER.IMS_PER_BATCH={total_batch_size} must be a positive multiple of the "
                f"number of processes ({world_size})"
            )
        self.dataset = dataset
        self.mapper = mapper
        self.seed = seed
        self.total_batch_size = total_batch_size
        per_process = total_batch_size // world_size
        self.slots = range(rank * per_process, (rank + 1) * per_process)
        self.start_iter = start_iter
        self._epoch = -1
        self._permutation = np.arange(0)

    def __iter__(self) -> Iterator[List[Dict[str, Any]]]:
        worker = get_worker_info()
        first, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for iteration in itertools.count(self.start_iter + first, step):
            yield self.batch(iteration)

    def batch(self, iteration: int) -> List[Dict[str, Any]]:
        """The mapped samples of this process's slots of ``iteration``."""
        return [self.sample(iteration, slot) for slot in self.slots]

    def index(self, iteration: int, slot: int) -> int:
        """Dataset index of ``slot`` of the global batch of ``iteration``."""
        epoch, offset = divmod(iteration * self.total_batch_size + slot, len(self.dataset))
        if epoch != self._epoch:
            rng = np.random.default_rng(derive_seed(self.seed, SAMPLE_ORDER, epoch))
            self._permutation = rng.permutation(len(self.dataset))
            self._epoch = epoch
        return int(self._permutation[offset])

    def sample(self, iteration: int, slot: int) -> Dict[str, Any]:
        """Map the item of (``iteration``, ``slot``) with RNGs seeded from them; a None from the
        mapper is replaced by another item, also drawn from them."""
        index = self.index(iteration, slot)
        for attempt in range(MAX_MAP_ATTEMPTS):
            with isolated_global_rngs():
                seed_global_rngs(
                    derive_seed(self.seed, SAMPLE_AUGMENTATION, iteration, slot, attempt)
                )
                mapped = self.mapper(self.dataset[index])
            if mapped is not None:
                mapped["sample_seed"] = derive_seed(self.seed, SAMPLE_MODEL, iteration, slot)
                return mapped
            logger.warning(
                "The mapper skipped dataset item %d (iteration %d, slot %d); drawing another.",
                index,
                iteration,
                slot,
            )
            retry = derive_seed(self.seed, SAMPLE_RETRY, iteration, slot, attempt)
            index = int(np.random.default_rng(retry).integers(len(self.dataset)))
        raise RuntimeError(
            f"The dataset mapper returned None for {MAX_MAP_ATTEMPTS} dataset items in a row "
            f"(iteration {iteration}, slot {slot}): check the training data and mapper"
        )


def _no_collate(batch: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return batch


class IterationBatchLoader:
    """An iterable of the batches of :class:`IterationBatches`, loaded by ``num_workers``
    data-loader processes.

    Each ``iter()`` starts at ``start_iter`` if given, else at :func:`current_iteration` (the
    trainer's iteration when it first asks for data: 0, or ``start_iter`` after a resume).
    """

    def __init__(
        self, batches: IterationBatches, num_workers: int = 0, start_iter: Optional[int] = None
    ) -> None:
        self.batches = batches
        self.num_workers = num_workers
        self.start_iter = start_iter

    def __iter__(self) -> Iterator[List[Dict[str, Any]]]:
        start = current_iteration() if self.start_iter is None else self.start_iter
        self.batches.start_iter = start
        logger.info(
            "Training data from iteration %d: order and augmentation drawn from SEED=%d, "
            "iteration and slot (%d images per iteration on this process, %d workers).",
            start,
            self.batches.seed,
            len(self.batches.slots),
            self.num_workers,
        )
        loader = DataLoader(
            self.batches,
            batch_size=None,
            num_workers=self.num_workers,
            collate_fn=_no_collate,
            # its own generator: creating the iterator draws a worker base seed, which would
            # otherwise come from (and advance) torch's global RNG in the middle of a step
            generator=torch.Generator().manual_seed(self.batches.seed),
        )
        return iter(loader)
