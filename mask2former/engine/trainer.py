"""The Mask2Former :class:`Trainer`: detectron2's ``DefaultTrainer`` extended, not copied.

It uses only detectron2's public extension points, so that a detectron2 upgrade changes nothing
here (``tests/engine/test_no_private_detectron2.py`` checks that no private attribute of a
detectron2 object is used):

- ``DefaultTrainer.__init__`` builds everything (model, optimizer, data, DDP, the training loop,
  LR scheduler, checkpointer with the trainer's state, hooks) through the documented classmethods
  overridden below: the train mapper comes from ``mask2former.data.mappers.registry``
  (``INPUT.DATASET_MAPPER_NAME``), wrapped to count skipped bad samples in ``metrics.json``; the
  test loader maps with its inference mode (resize only, as detectron2's default
  ``DatasetMapper`` of the official code); a video meta-architecture (``VideoMaskFormer``) gets
  clip mappers instead (``build_video_dataset_mapper``); evaluators come from
  ``mask2former.evaluation.build_evaluator`` (by the dataset's ``evaluator_type``); optimizer and
  schedule from ``mask2former.solver``.
- precision: ``SOLVER.AMP.{ENABLED,DTYPE}`` keep detectron2's own loops (``AMPTrainer`` on CUDA,
  ``SimpleTrainer`` elsewhere) and add an autocast of the chosen dtype around the model's forward
  (:mod:`mask2former.engine.precision`), which is how bfloat16 trains on a CPU.
- evaluation: :meth:`build_hooks` swaps detectron2's evaluation hook for one calling
  :meth:`evaluate`, which keeps the results in :attr:`last_eval_results` (returned by
  :meth:`train`), and adds the test-time-augmentation evaluation after training when
  ``TEST.AUG.ENABLED``.
- reliability: with ``SEED`` >= 0 the training data and the model's random draws are fixed by
  iteration (:mod:`mask2former.engine.reproducibility`), checkpoints are written atomically and
  verified when loaded, with a fallback to the previous one on ``--resume``
  (:mod:`mask2former.engine.checkpoint`), and training stops at the first non-finite loss,
  gradient or parameter after saving the last finite state (:mod:`mask2former.engine.numerics`).
- several processes on CPUs (gloo): :mod:`mask2former.engine.distributed`.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional

import torch
from detectron2.config import CfgNode
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, HookBase, TrainerBase, hooks
from detectron2.evaluation import DatasetEvaluator, verify_results
from detectron2.utils import comm
from torch import nn

from mask2former.engine.checkpoint import Checkpointer
from mask2former.engine.distributed import cpu_capable_ddp
from mask2former.engine.numerics import NonFiniteCheck
from mask2former.engine.precision import training_autocast, uses_grad_scaler
from mask2former.engine.reproducibility import (
    IterationSeeds,
    build_reproducible_train_loader,
    reproducible_training,
)
from mask2former.solver import build_lr_scheduler, build_optimizer
from mask2former.utils.cpu_memory import keep_freed_cpu_memory

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "register_model_components"]


def register_model_components() -> None:
    """Import the modules that register MaskFormer, its head, decoders and Swin with detectron2."""
    import mask2former.modeling.backbone.swin  # noqa: F401
    import mask2former.modeling.heads.mask_former_head  # noqa: F401
    import mask2former.modeling.meta_arch.mask_former  # noqa: F401


def _loop_config(cfg: CfgNode) -> CfgNode:
    """``cfg`` for ``DefaultTrainer``, whose ``SOLVER.AMP.ENABLED`` selects ``AMPTrainer``.

    ``AMPTrainer`` needs CUDA, so elsewhere (CPU bfloat16) detectron2 gets a copy with AMP off and
    trains with ``SimpleTrainer``; the autocast is ours (:func:`training_autocast`).
    """
    if not cfg.SOLVER.AMP.ENABLED or uses_grad_scaler(cfg):
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.AMP.ENABLED = False
    cfg.freeze()
    return cfg


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with Mask2Former's data, evaluation, solver and precision choices.

    Attributes (besides ``DefaultTrainer``'s):
        autocast: the :class:`~mask2former.engine.precision.TrainingAutocast` around the model's
            training forward, or None (float32).
        last_eval_results: what the latest evaluation during training returned (with the
            ``*_TTA`` results merged in after training when ``TEST.AUG.ENABLED``), or None.

    On a device other than CUDA with ``SOLVER.AMP.ENABLED``, ``self.cfg`` (the config detectron2
    trained with) has ``SOLVER.AMP.ENABLED`` False: the mixed precision is ``self.autocast``.
    """

    def __init__(self, cfg: CfgNode) -> None:
        self.last_eval_results: Optional[Dict[str, Any]] = None
        with cpu_capable_ddp():
            super().__init__(_loop_config(cfg))
        self.autocast = training_autocast(cfg)
        if self.autocast is not None:
            self.autocast.attach(self.model)
        # Before the first step (the data loader's workers start then and inherit it).
        if cfg.SOLVER.CPU_KEEP_FREED_MEMORY and torch.device(cfg.MODEL.DEVICE).type == "cpu":
            keep_freed_cpu_memory()

    def build_hooks(self) -> List[Optional[HookBase]]:
        """detectron2's default hooks with our checkpointer, evaluating through :meth:`evaluate`
        (then TTA if enabled), after :class:`IterationSeeds` (``SEED`` >= 0) and
        :class:`NonFiniteCheck`.

        ``DefaultTrainer.__init__`` creates its ``DetectionCheckpointer`` just before calling
        this; it is replaced here by :class:`Checkpointer` (same arguments), so the periodic
        checkpointer hook and :meth:`resume_or_load` use it. detectron2's evaluation hook stores
        its results in a private attribute; ours, in the same place of the list (after the
        checkpointer, before the writers), keeps them in :attr:`last_eval_results`.
        :class:`NonFiniteCheck` checks inside the step (before the periodic checkpointer runs),
        so no non-finite state is saved.
        """
        self.checkpointer = Checkpointer(
            self.model, self.cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        checks: List[Optional[HookBase]] = [NonFiniteCheck()]
        if reproducible_training(self.cfg):
            checks.insert(0, IterationSeeds(self.cfg.SEED))
        evaluation: List[Optional[HookBase]] = [
            hooks.EvalHook(self.cfg.TEST.EVAL_PERIOD, self.evaluate)
        ]
        if self.cfg.TEST.AUG.ENABLED:
            evaluation.append(hooks.EvalHook(0, self.evaluate_with_tta))
        hook_list = super().build_hooks()
        hook_list = hook_list[:1] + checks + hook_list[1:]
        for i, hook in enumerate(hook_list):
            if isinstance(hook, hooks.EvalHook):
                return hook_list[:i] + evaluation + hook_list[i + 1 :]
        writers = [i for i, h in enumerate(hook_list) if isinstance(h, hooks.PeriodicWriter)]
        at = writers[0] if writers else len(hook_list)
        return hook_list[:at] + evaluation + hook_list[at:]

    def evaluate(self) -> Dict[str, Any]:
        """Evaluate the model on ``DATASETS.TEST``; keep the results in ``last_eval_results``."""
        self.last_eval_results = self.test(self.cfg, self.model)
        return self.last_eval_results

    def evaluate_with_tta(self) -> Dict[str, Any]:
        """:meth:`test_with_TTA` on the model; its results are merged into ``last_eval_results``."""
        results = self.test_with_TTA(self.cfg, self.model)
        self.last_eval_results = {**(self.last_eval_results or {}), **results}
        return results

    def train(self) -> Optional[Dict[str, Any]]:
        """Run training; return the results of the last evaluation (None if none ran).

        ``DefaultTrainer.train`` documents this return value but only returns (and checks against
        ``TEST.EXPECTED_RESULTS``) the results that its own evaluation hook, replaced here, saves
        in a private attribute. This runs the same loop and does the same check with ours.
        """
        TrainerBase.train(self, self.start_iter, self.max_iter)
        if len(self.cfg.TEST.EXPECTED_RESULTS) and comm.is_main_process():
            if self.last_eval_results is None:
                raise RuntimeError("TEST.EXPECTED_RESULTS is set but no evaluation ran")
            verify_results(self.cfg, self.last_eval_results)
        return self.last_eval_results

    @classmethod
    def build_model(cls, cfg: CfgNode) -> nn.Module:
        register_model_components()
        return super().build_model(cfg)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Iterable[Any]:
        """The mapper of ``INPUT.DATASET_MAPPER_NAME`` (a clip mapper for a video model) in the
        reproducible loader (``SEED`` >= 0, see :mod:`mask2former.engine.reproducibility`) or
        detectron2's (``SEED`` < 0). Bad samples the mapper skips are counted in metrics.json
        (``data/skipped_<reason>``); the test datasets are checked now rather than at the first
        evaluation."""
        from mask2former.data import SkippedSampleCounter, build_dataset_mapper, check_registered
        from mask2former.data.mappers import build_video_dataset_mapper
        from mask2former.modeling.meta_arch import is_video_meta_architecture

        check_registered(cfg.DATASETS.TEST, "DATASETS.TEST")
        if is_video_meta_architecture(cfg.MODEL.META_ARCHITECTURE):  # clips of a video model
            mapper = build_video_dataset_mapper(cfg, cfg.DATASETS.TRAIN[0], is_train=True)
        else:
            mapper = build_dataset_mapper(cfg, is_train=True)
        if reproducible_training(cfg, log=True):
            return SkippedSampleCounter(build_reproducible_train_loader(cfg, mapper))
        return SkippedSampleCounter(build_detection_train_loader(cfg, mapper=mapper))

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> Iterable[Any]:
        # The inference mode of the dataset mappers: what detectron2's default DatasetMapper(cfg,
        # is_train=False) of the official code does (read + ResizeShortestEdge of
        # INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), with errors naming a missing or truncated image;
        # for a video model, every frame of a video. Evaluators read the ground truth from files.
        from mask2former.data import build_dataset_mapper, check_registered
        from mask2former.data.mappers import build_video_dataset_mapper
        from mask2former.modeling.meta_arch import is_video_meta_architecture

        check_registered([dataset_name], "DATASETS.TEST")
        if is_video_meta_architecture(cfg.MODEL.META_ARCHITECTURE):
            mapper = build_video_dataset_mapper(cfg, dataset_name, is_train=False)
        else:
            mapper = build_dataset_mapper(cfg, is_train=False)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_evaluator(
        cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None
    ) -> DatasetEvaluator:
        from mask2former.evaluation import build_evaluator

        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(
        cls, cfg: CfgNode, optimizer: torch.optim.Optimizer
    ) -> torch.optim.lr_scheduler.LRScheduler:
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def test_with_TTA(cls, cfg: CfgNode, model: nn.Module) -> Dict[str, Any]:  # noqa: N802
        """Evaluate ``model`` wrapped in test-time augmentation (``TEST.AUG``) on ``DATASETS.TEST``.

        Returns the evaluation results with ``"_TTA"`` appended to every task name.
        """
        from mask2former.modeling.meta_arch.test_time_augmentation import (
            SemanticSegmentorWithTTA,
        )

        logger.info("Running inference with test-time augmentation ...")
        tta_model = SemanticSegmentorWithTTA(cfg, model)
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference_TTA")
        evaluators = [cls.build_evaluator(cfg, name, output_folder) for name in cfg.DATASETS.TEST]
        results = cls.test(cfg, tta_model, evaluators)
        return OrderedDict((k + "_TTA", v) for k, v in results.items())
