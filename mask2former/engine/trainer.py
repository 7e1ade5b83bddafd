"""The Mask2Former :class:`Trainer`: detectron2's ``DefaultTrainer`` wired to this project.

What differs from ``DefaultTrainer`` (and from the official ``train_net.py`` Trainer, which this
replaces):

- data: the train mapper comes from ``mask2former.data.mappers.registry``
  (``INPUT.DATASET_MAPPER_NAME``);
  the test loader uses detectron2's default ``DatasetMapper`` (resize only), as the official code;
- evaluation: ``mask2former.evaluation.build_evaluator`` (by the dataset's ``evaluator_type``);
- solver: ``mask2former.solver.build_optimizer`` / ``build_lr_scheduler``;
- precision: ``SOLVER.AMP.{ENABLED,DTYPE}`` select float16 AMP on CUDA or bfloat16 autocast on CPU
  (see :func:`mask2former.engine.train_loop.build_train_loop`).
"""

from __future__ import annotations

import logging
import os
import weakref
from collections import OrderedDict
from typing import Any, Dict, Iterable, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, TrainerBase, create_ddp_model
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch import nn

from mask2former.engine.train_loop import build_train_loop
from mask2former.solver import build_lr_scheduler, build_optimizer

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "register_model_components"]


def register_model_components() -> None:
    """Import the modules that register MaskFormer, its head, decoders and Swin with detectron2."""
    import mask2former.modeling.backbone.swin  # noqa: F401
    import mask2former.modeling.heads.mask_former_head  # noqa: F401
    import mask2former.modeling.meta_arch.mask_former  # noqa: F401


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with Mask2Former's data, evaluation, solver and precision choices."""

    def __init__(self, cfg: CfgNode) -> None:
        # Same as DefaultTrainer.__init__, except the training loop comes from build_train_loop.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = build_train_loop(
            model,
            data_loader,
            optimizer,
            amp_enabled=cfg.SOLVER.AMP.ENABLED,
            amp_dtype=cfg.SOLVER.AMP.DTYPE,
            device=cfg.MODEL.DEVICE,
        )
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def train(self) -> Optional[Dict[str, Any]]:
        """Run training; return the results of the last evaluation (None if none ran)."""
        super().train()
        return getattr(self, "_last_eval_results", None)

    @classmethod
    def build_model(cls, cfg: CfgNode) -> nn.Module:
        register_model_components()
        return super().build_model(cfg)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Iterable[Any]:
        from mask2former.data.mappers.registry import build_dataset_mapper

        return build_detection_train_loader(cfg, mapper=build_dataset_mapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> Iterable[Any]:
        # detectron2's default DatasetMapper(cfg, is_train=False): read + ResizeShortestEdge
        # (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST); evaluators read the ground truth from files.
        return build_detection_test_loader(cfg, dataset_name)

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
