#!/usr/bin/env python
"""Export a Mask2Former network (up to the logits) to ONNX, or trace it with TorchScript.

    python tools/export_model.py --config-file configs/coco/panoptic-segmentation/swin/\
maskformer2_swin_tiny_bs16_50ep.yaml --format onnx --output model.onnx MODEL.WEIGHTS model_final.pkl

The graph takes ``image`` [1, 3, H, W] float32 RGB 0..255 (H, W multiples of 32, dynamic for ONNX;
normalisation and any BGR swap inside) and returns ``pred_logits`` [1, Q, K+1] and ``pred_masks``
[1, Q, H/4, W/4]. The ONNX file carries what ``mask2former_onnx.OnnxPredictor`` needs to resize,
pad and post-process (numpy only). A TorchScript trace is valid for every size with a ResNet
backbone, but only at ``--size`` with Swin (its window padding is traced as constants). Needs the
``onnx`` extra for ONNX (``pip install -e .[onnx]``).
"""

import argparse
import logging
import sys

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from mask2former.engine import build_config
from mask2former.export import ExportableMaskFormer, deploy_metadata, export_onnx, trace_torchscript

logger = logging.getLogger("mask2former.export_model")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--output", required=True, help="the .onnx / .ts file to write")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(512, 512),
        metavar=("H", "W"),
        help="example input size (multiples of 32); the trace's only size",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 16)")
    parser.add_argument("--no-check", action="store_true", help="skip comparing with PyTorch")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


def _max_relative_difference(expected, got) -> float:
    return max(
        float((torch.as_tensor(g) - e).abs().max() / e.abs().max().clamp_min(1e-12))
        for e, g in zip(expected, got)
    )


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="mask2former")
    cfg = build_config(args.config_file, ["MODEL.DEVICE", "cpu", *args.opts])
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("MODEL.WEIGHTS is empty: exporting randomly initialised weights")
    wrapper = ExportableMaskFormer(model, cfg.INPUT.FORMAT).eval()
    size = tuple(args.size)
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1)) * 255
    expected = wrapper.reference_outputs(model, image)
    if args.format == "onnx":
        export_onnx(
            wrapper,
            args.output,
            example_size=size,
            opset=args.opset,
            metadata=deploy_metadata(model, cfg),
        )
        if not args.no_check:
            import onnxruntime

            session = onnxruntime.InferenceSession(args.output)
            got = session.run(None, {"image": image.numpy()})
            logger.info(
                "ONNX Runtime vs PyTorch: max relative difference %.2e",
                _max_relative_difference(expected, got),
            )
        return
    if cfg.MODEL.BACKBONE.NAME == "D2SwinTransformer":
        logger.warning("Swin backbone: the TorchScript trace is valid at %dx%d only", *size)
    traced = trace_torchscript(wrapper, args.output, example_size=size)
    if not args.no_check:
        with torch.no_grad():
            got = traced(image)
        logger.info(
            "TorchScript vs PyTorch: max relative difference %.2e",
            _max_relative_difference(expected, got),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
