#!/usr/bin/env python
"""Train or evaluate Mask2Former with detectron2.

    python tools/train_net.py --num-gpus 8 \
        --config-file configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml
    python tools/train_net.py --config-file CONFIG --eval-only MODEL.WEIGHTS model_final.pth
    python tools/train_net.py --config-file CONFIG --resume  # from OUTPUT_DIR/last_checkpoint

Multi-process launch uses NCCL on GPU and gloo on CPU (detectron2's ``launch`` chooses); several
machines: ``--num-machines N --machine-rank R --dist-url tcp://HOST:PORT`` on each.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict

from detectron2.engine import default_argument_parser, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from mask2former.engine import Trainer, setup
from mask2former.engine.checkpoint import Checkpointer
from mask2former.engine.distributed import finish_distributed


def main(args: argparse.Namespace) -> Dict[str, Any]:
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        Checkpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            results.update(Trainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            verify_results(cfg, results)
        return results

    trainer = Trainer(cfg)  # evaluates during and after training (with TTA if TEST.AUG.ENABLED)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main_then_finish(args: argparse.Namespace) -> Dict[str, Any]:
    """What each launched process runs: :func:`main`, then all processes close the process
    group together (:func:`finish_distributed`)."""
    results = main(args)
    finish_distributed()
    return results


def invoke_main() -> None:
    args = default_argument_parser().parse_args()
    launch(
        main_then_finish,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()
