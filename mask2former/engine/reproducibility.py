# Copyright (c) the mask2former authors.
"""Training that a restart does not change: ``SEED`` >= 0 fixes every random draw by iteration.

- data: :func:`build_reproducible_train_loader` (order and augmentation from SEED, iteration and
  slot in the global batch: :mod:`mask2former.data.samplers`), so a resumed run, and a run with
  another number of processes or data-loader workers, sees the same images with the same crops;
- model: the loader gives each image a ``sample_seed`` for the random point sampling of the
  matcher and the mask losses; :class:`IterationSeeds` re-seeds the global RNGs (dropout, Swin's
  drop path) from (SEED, iteration, rank) before every iteration.

With the optimizer, LR schedule, GradScaler and iteration in the checkpoint, a run killed and
resumed with ``--resume`` ends with the same weights as an uninterrupted one (bit-identical on a
CPU). ``SEED`` < 0 keeps detectron2's behaviour: a random seed (logged by detectron2) and its
shuffled training stream, which a restart does not continue.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from detectron2.config import CfgNode
from detectron2.data import get_detection_dataset_dicts
from detectron2.data.common import DatasetFromList
from detectron2.engine import HookBase
from detectron2.utils import comm

from mask2former.data.samplers import IterationBatches, IterationBatchLoader
from mask2former.utils.seeding import MODEL_STEP, derive_seed, seed_global_rngs

logger = logging.getLogger(__name__)

__all__ = ["IterationSeeds", "build_reproducible_train_loader", "reproducible_training"]

# The training sampler whose behaviour the reproducible loader reproduces.
REPRODUCIBLE_SAMPLER = "TrainingSampler"


def reproducible_training(cfg: CfgNode, log: bool = False) -> bool:
    """Whether ``cfg`` trains reproducibly: ``SEED`` >= 0 and the uniform ``TrainingSampler``.

    With ``log``, says why not otherwise (a resumed run then differs from an uninterrupted one).
    """
    if cfg.SEED < 0:
        if log:
            logger.info(
                "SEED=%d: random seed and detectron2's data stream; a resumed run will not repeat "
                "an uninterrupted one (set SEED >= 0 for that).",
                cfg.SEED,
            )
        return False
    if cfg.DATALOADER.SAMPLER_TRAIN != REPRODUCIBLE_SAMPLER:
        if log:
            logger.warning(
                "DATALOADER.SAMPLER_TRAIN=%s: detectron2's loader is used; a resumed run will "
                "not repeat an uninterrupted one (only %s is reproduced by iteration).",
                cfg.DATALOADER.SAMPLER_TRAIN,
                REPRODUCIBLE_SAMPLER,
            )
        return False
    return True


def build_reproducible_train_loader(
    cfg: CfgNode, mapper: Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]
) -> IterationBatchLoader:
    """The training loader of ``DATASETS.TRAIN`` with ``mapper``, reproducible by iteration.

    Reads ``DATASETS.TRAIN``, ``DATALOADER.{FILTER_EMPTY_ANNOTATIONS,NUM_WORKERS}``,
    ``SOLVER.IMS_PER_BATCH`` (over all processes) and ``SEED``.
    """
    dicts = get_detection_dataset_dicts(
        cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
    )
    if cfg.DATALOADER.ASPECT_RATIO_GROUPING:
        logger.info(
            "DATALOADER.ASPECT_RATIO_GROUPING is not applied by the reproducible loader: batches "
            "are the iteration's slots (Mask2Former's mappers give fixed-size crops)."
        )
    batches = IterationBatches(
        DatasetFromList(dicts, copy=False),  # serialized: every access is a fresh copy
        mapper,
        seed=cfg.SEED,
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        rank=comm.get_rank(),
        world_size=comm.get_world_size(),
    )
    return IterationBatchLoader(batches, num_workers=cfg.DATALOADER.NUM_WORKERS)


class IterationSeeds(HookBase):
    """Seed Python's, numpy's and torch's global RNGs from (seed, iteration, rank) before each
    iteration; the seed is saved in checkpoints and a resume with another one is warned about."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def before_step(self) -> None:
        seed_global_rngs(derive_seed(self.seed, MODEL_STEP, self.trainer.iter, comm.get_rank()))

    def state_dict(self) -> Dict[str, int]:
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: Dict[str, int]) -> None:
        if state_dict.get("seed") != self.seed:
            logger.warning(
                "Resuming with SEED=%d from a checkpoint trained with SEED=%s: the data order and "
                "augmentations from here on differ from an uninterrupted run.",
                self.seed,
                state_dict.get("seed"),
            )
