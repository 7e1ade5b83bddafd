# Copyright (c) the mask2former authors.
"""Seeds derived from ``SEED`` and counters, so that training randomness is a function of
(seed, iteration, sample slot) and not of the history of a process.

A restarted (``--resume``) run, a run with another number of processes or data-loader workers and
an uninterrupted run draw the same random numbers for the same iteration and sample: each use
re-seeds the generators it consumes from :func:`derive_seed` just before it draws. Derivation uses
numpy's ``SeedSequence`` (distinct keys give statistically independent streams).
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

__all__ = [
    "MODEL_STEP",
    "SAMPLE_AUGMENTATION",
    "SAMPLE_MODEL",
    "SAMPLE_ORDER",
    "SAMPLE_RETRY",
    "derive_seed",
    "isolated_global_rngs",
    "seed_global_rngs",
]

# What a derived seed is for: the first key of derive_seed, so that streams never coincide.
SAMPLE_ORDER = 0  # keys (epoch,): the permutation of the dataset in that epoch
SAMPLE_AUGMENTATION = 1  # keys (iteration, slot, attempt): the mapper's random draws
SAMPLE_MODEL = 2  # keys (iteration, slot): the model's random draws for that sample
MODEL_STEP = 3  # keys (iteration, rank): the model's other random draws in that step
SAMPLE_RETRY = 4  # keys (iteration, slot, attempt): the replacement of a skipped sample


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed determined by ``seed`` (>= 0) and the non-negative integers ``keys``."""
    if seed < 0 or any(k < 0 for k in keys):
        raise ValueError(f"derive_seed needs non-negative seed and keys, got {seed}, {keys}")
    return int(np.random.SeedSequence(seed, spawn_key=keys).generate_state(1)[0])


def seed_global_rngs(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG (which detectron2's augmentations draw from)
    and torch's default generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def isolated_global_rngs() -> Iterator[None]:
    """Restore the state of Python's, numpy's and torch's CPU global RNGs on exit, so that what
    runs inside (e.g. mapping a sample in the main process) does not change what runs after."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
