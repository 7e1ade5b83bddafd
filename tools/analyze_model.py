#!/usr/bin/env python
"""Parameters, FLOPs, activations, peak activation memory and latency of a Mask2Former config.

The official tool's command line (detectron2's and Mask2Former's ``tools/analyze_model.py``), plus
the ``memory`` and ``latency`` tasks, image inputs and a JSON output:

    python tools/analyze_model.py --tasks parameter structure --config-file CONFIG.yaml
    python tools/analyze_model.py --tasks flop memory latency --input-size 800 1088 \\
        --config-file configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml \\
        --output analysis.json MODEL.WEIGHTS "" MODEL.DEVICE cpu

Inputs (FLOPs, activations, memory and latency depend on the image): by default the COCO photos
shipped in ``tests/data/samples/coco_panoptic/images`` (or ``--input`` files), read in
``INPUT.FORMAT`` and resized as at test time (``ResizeShortestEdge(MIN_SIZE_TEST,
MAX_SIZE_TEST)``), or to exactly ``--input-size H W``; with ``--dataset`` the first
``--num-inputs`` images of ``DATASETS.TEST[0]`` through detectron2's test loader, as the official
tool does. The model pads the image to its size divisibility (32); results are produced at the
photo's original size, as in evaluation. Numbers are averaged over the inputs (the paper's FLOPs
are the mean over 100 COCO val images). FLOP counting: see ``mask2former/utils/analysis.py``.
"""

import itertools
import json
import logging
import os
import platform
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.data import build_detection_test_loader
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger
from fvcore.nn import flop_count_table, parameter_count, parameter_count_table
from tabulate import tabulate
from torch import nn

from mask2former.engine import build_config
from mask2former.utils.analysis import (
    MaskFormerActivationCountAnalysis,
    MaskFormerFlopCountAnalysis,
    measure_latency,
    peak_memory_bytes,
)

logger = logging.getLogger("mask2former.analyze_model")
SAMPLES = Path(__file__).resolve().parents[1] / "tests/data/samples/coco_panoptic/images"
DATA_TASKS = {"flop", "activation", "memory", "latency"}


def image_inputs(cfg: CfgNode, args) -> List[Dict[str, Any]]:
    """Model inputs from image files: ``image`` [3, H, W] float (``INPUT.FORMAT``), resized as at
    test time or to ``--input-size``; ``height``/``width`` the file's size; ``file_name``."""
    files = [Path(f) for f in args.input] if args.input else sorted(SAMPLES.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no input images: pass --input FILE ... ({SAMPLES} is empty)")
    if args.input_size:
        resize = T.Resize(tuple(args.input_size))
    else:
        min_size = cfg.INPUT.MIN_SIZE_TEST
        resize = T.ResizeShortestEdge([min_size, min_size], cfg.INPUT.MAX_SIZE_TEST)
    inputs = []
    for path in files[: args.num_inputs]:
        if not path.is_file():
            raise FileNotFoundError(f"--input image not found: {path}")
        image = read_image(str(path), format=cfg.INPUT.FORMAT)  # H, W, 3 with EXIF rotation
        height, width = image.shape[:2]
        image = resize.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)).astype("float32"))
        inputs.append({"image": tensor, "height": height, "width": width, "file_name": str(path)})
    return inputs


def dataset_inputs(cfg: CfgNode, num_inputs: int) -> List[Dict[str, Any]]:
    """The first ``num_inputs`` of ``DATASETS.TEST[0]`` through detectron2's test loader."""
    loader = build_detection_test_loader(cfg, cfg.DATASETS.TEST[0])
    inputs = []
    for batch in loader:
        inputs.extend(batch)
        if len(inputs) >= num_inputs:
            break
    return inputs[:num_inputs]


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def network_size(model: nn.Module, image: torch.Tensor) -> List[int]:
    """[H, W] of the padded tensor the backbone sees."""
    divisor = max(int(getattr(model, "size_divisibility", 0)), 1)
    return [-(-int(s) // divisor) * divisor for s in image.shape[-2:]]


def do_parameter(model: nn.Module, inputs: List[Dict[str, Any]], args) -> Dict[str, Any]:
    max_depth = args.max_depth
    logger.info("Parameter count:\n%s", parameter_count_table(model, max_depth=max_depth))
    counts = parameter_count(model)
    by_module = {k: v for k, v in counts.items() if k and k.count(".") < max_depth}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": counts[""], "trainable": trainable, "by_module": by_module}


def do_structure(model: nn.Module, inputs: List[Dict[str, Any]], args) -> Dict[str, Any]:
    logger.info("Model structure:\n%s", model)
    return {"text": str(model)}


def _mean_std(values: List[float]) -> Dict[str, float]:
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std}


def do_flop(model: nn.Module, inputs: List[Dict[str, Any]], args) -> Dict[str, Any]:
    max_depth = args.max_depth
    totals, operators, modules, unsupported = [], Counter(), Counter(), Counter()
    for i, item in enumerate(inputs):
        flops = MaskFormerFlopCountAnalysis(model, [item])
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        totals.append(flops.total())
        operators.update(flops.by_operator())
        modules.update(flops.by_module())
        unsupported.update(flops.unsupported_ops())
        if i == 0:
            logger.info("FLOPs of the first input:\n%s", flop_count_table(flops, max_depth))
    n = len(inputs)
    # ops run by the meta-architecture itself (outside its submodules): mask upsampling and the
    # semantic/panoptic/instance inference
    children = [f"model.{name}" for name, _ in model.named_children()]
    outside = modules["model"] - sum(modules[c] for c in children)
    by_module = {
        k[len("model.") :]: v / n / 1e9
        for k, v in modules.items()
        if k.startswith("model.") and k.count(".") <= max_depth and v
    }
    result = {
        "gflops": _mean_std([t / 1e9 for t in totals]),
        "per_input_gflops": [t / 1e9 for t in totals],
        "by_operator_gflops": {k: v / n / 1e9 for k, v in operators.most_common()},
        "by_module_gflops": by_module,
        "post_processing_gflops": outside / n / 1e9,
        "uncounted_ops": dict(unsupported.most_common()),
    }
    # summary: the model's parts and, but for the backbone (its stages are in the table above),
    # their parts: backbone, sem_seg_head, sem_seg_head.pixel_decoder, sem_seg_head.predictor
    summary = [
        name
        for name, _ in model.named_modules()
        if name.count(".") == 0 or (name.count(".") == 1 and not name.startswith("backbone."))
    ]
    rows = [(name, f"{by_module[name]:.2f}") for name in summary if name in by_module]
    rows += [("(post-processing)", f"{result['post_processing_gflops']:.2f}")]
    rows += [("total", f"{result['gflops']['mean']:.2f} ± {result['gflops']['std']:.2f}")]
    logger.info(
        "GFLOPs averaged over %d input(s):\n%s\nby operator: %s\nnot counted (no FLOP handle): %s",
        n,
        tabulate(rows, headers=["module", "GFLOPs"], tablefmt="pipe"),
        {k: round(v, 3) for k, v in result["by_operator_gflops"].items()},
        result["uncounted_ops"],
    )
    return result


def do_activation(model: nn.Module, inputs: List[Dict[str, Any]], args) -> Dict[str, Any]:
    totals, operators = [], Counter()
    for item in inputs:
        counts = MaskFormerActivationCountAnalysis(model, [item])
        counts.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        totals.append(counts.total() / 1e6)
        operators.update(counts.by_operator())
    result = {
        "million_activations": _mean_std(totals),
        "by_operator_million": {k: v / len(inputs) / 1e6 for k, v in operators.items()},
    }
    logger.info("Million activations: %s", result)
    return result


def do_memory(model: nn.Module, inputs: List[Dict[str, Any]], args) -> Dict[str, Any]:
    device = model_device(model)
    peaks = []
    for item in inputs:
        with torch.inference_mode():
            peaks.append(peak_memory_bytes(lambda item=item: model([item]), device) / 2**20)
    method = (
        "torch.cuda.max_memory_allocated"
        if device.type == "cuda"
        else "torch.profiler memory events of the CPU allocator, summed in time order"
    )
    result = {"peak_activation_mib": _mean_std(peaks), "per_input_mib": peaks, "method": method}
    logger.info("Peak activation memory (MiB, %s): %s", method, result["peak_activation_mib"])
    return result


def do_latency(model: nn.Module, inputs: List[Dict[str, Any]], args) -> Dict[str, Any]:
    counter = itertools.count()

    def run() -> None:  # cycles through the inputs, one image per call
        with torch.inference_mode():
            model([inputs[next(counter) % len(inputs)]])

    result = measure_latency(
        run, runs=args.latency_runs, warmup=args.warmup, device=model_device(model)
    )
    result.update({"runs": args.latency_runs, "warmup": args.warmup})
    logger.info(
        "Latency over %d runs (%d threads): median %.3f s, min %.3f s, max %.3f s",
        args.latency_runs,
        torch.get_num_threads(),
        result["median_s"],
        result["min_s"],
        result["max_s"],
    )
    return result


TASK_FUNCTIONS = {
    "flop": do_flop,
    "activation": do_activation,
    "parameter": do_parameter,
    "structure": do_structure,
    "memory": do_memory,
    "latency": do_latency,
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv=None):
    parser = default_argument_parser(epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    parser.add_argument("--tasks", choices=sorted(TASK_FUNCTIONS), required=True, nargs="+")
    parser.add_argument(
        "-n",
        "--num-inputs",
        default=100,
        type=int,
        help="number of inputs to average the data-dependent numbers over (at most the number "
        "of --input images)",
    )
    parser.add_argument("--input", nargs="+", help="image files (default: the COCO samples)")
    parser.add_argument(
        "--input-size", nargs=2, type=int, metavar=("H", "W"), help="resize images to H x W"
    )
    parser.add_argument(
        "--use-fixed-input-size",
        action="store_true",
        help="official flag: resize images to the square INPUT.CROP.SIZE (absolute crops)",
    )
    parser.add_argument("--dataset", action="store_true", help="inputs from DATASETS.TEST[0]")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--latency-runs", type=int, default=10, help="timed runs (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--max-depth", type=int, default=3, help="module depth of the tables")
    parser.add_argument("--output", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.eval_only or args.num_gpus != 1 or args.resume:
        parser.error("--eval-only, --resume and --num-gpus are not used by this tool")
    if args.num_inputs < 1:
        parser.error(f"--num-inputs must be >= 1, got {args.num_inputs}")
    return args


def main(argv=None) -> Dict[str, Any]:
    args = parse_args(argv)
    # the CPU profiler (memory task) of a CUDA build logs an error when it finds no GPU
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    setup_logger(name="fvcore")
    setup_logger(name="mask2former")
    cfg = build_config(args.config_file, args.opts)
    if args.use_fixed_input_size:
        if cfg.INPUT.CROP.TYPE != "absolute":
            raise ValueError(
                "--use-fixed-input-size needs an absolute INPUT.CROP.TYPE, got "
                f"{cfg.INPUT.CROP.TYPE!r}"
            )
        args.input_size = [cfg.INPUT.CROP.SIZE[0]] * 2
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(cfg).eval()
    device = model_device(model)
    results: Dict[str, Any] = {
        "config_file": args.config_file,
        "opts": args.opts,
        "device": str(device),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    inputs: List[Dict[str, Any]] = []
    if DATA_TASKS.intersection(args.tasks):
        if cfg.MODEL.WEIGHTS:
            DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        inputs = dataset_inputs(cfg, args.num_inputs) if args.dataset else image_inputs(cfg, args)
        results["inputs"] = [
            {
                "file_name": item.get("file_name"),
                "output_size": [item.get("height"), item.get("width")],
                "network_input": network_size(model, item["image"]),
            }
            for item in inputs
        ]
    for task in args.tasks:
        results[task] = TASK_FUNCTIONS[task](model, inputs, args)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1) + "\n")
        logger.info("Wrote %s", args.output)
    return results


if __name__ == "__main__":
    main()
