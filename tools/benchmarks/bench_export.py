"""ONNX Runtime CPU latency of exported Mask2Former networks beside PyTorch eager, as JSON.

For each recipe (random weights, same weights on both sides): the network up to the logits
(``ExportableMaskFormer``: normalisation, backbone, pixel decoder, transformer decoder) on one
800x1088 input; the median wall time of ``--repeats`` runs after one warm-up, ``--threads``
intra-op threads on both sides; also the export time and the max relative difference of the
outputs. PyTorch runs the model's own modules (``model.sem_seg_head(model.backbone(x))``) with
the compiled deformable-attention kernel when built.

    python tools/benchmarks/bench_export.py --threads 2 --out bench_results/export.json
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch
from bench_common import cpu_model, write_results  # noqa: E402
from detectron2.modeling import build_model

import mask2former  # noqa: F401  (registers the model)
from mask2former.engine import build_config
from mask2former.export import ExportableMaskFormer, export_onnx

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    "R50": "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml",
    "Swin-T": "configs/coco/panoptic-segmentation/swin/maskformer2_swin_tiny_bs16_50ep.yaml",
}


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(config: str, size: tuple, threads: int, repeats: int, workdir: str) -> dict:
    cfg = build_config(str(REPO / config), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    wrapper = ExportableMaskFormer(model, cfg.INPUT.FORMAT).eval()
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) * 255
    path = str(Path(workdir) / "model.onnx")
    start = time.perf_counter()
    export_onnx(wrapper, path, example_size=(512, 512))
    export_s = time.perf_counter() - start

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"image": image.numpy()}
    got = session.run(None, feed)
    ref = wrapper.reference_outputs(model, image)
    rel = max(
        float((torch.from_numpy(g) - r).abs().max() / r.abs().max()) for g, r in zip(got, ref)
    )
    with torch.inference_mode():
        torch_s = _median_time(lambda: wrapper.reference_outputs(model, image), repeats)
    ort_s = _median_time(lambda: session.run(None, feed), repeats)
    return {
        "config": config,
        "height": size[0],
        "width": size[1],
        "pytorch_eager_median_s": round(torch_s, 3),
        "onnxruntime_median_s": round(ort_s, 3),
        "onnxruntime_speedup": round(torch_s / ort_s, 2),
        "export_s": round(export_s, 1),
        "max_relative_difference": rel,
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=2, default=(800, 1088))
    parser.add_argument("--configs", nargs="+", default=sorted(CONFIGS), choices=sorted(CONFIGS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "threads": args.threads,
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "runs": {},
    }
    for name in args.configs:
        with tempfile.TemporaryDirectory() as workdir:
            results["runs"][f"{name}@{args.size[0]}x{args.size[1]}"] = bench(
                CONFIGS[name], tuple(args.size), args.threads, args.repeats, workdir
            )
    write_results(results, args.out)


if __name__ == "__main__":
    main()
