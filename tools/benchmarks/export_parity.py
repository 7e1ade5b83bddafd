"""Max differences of the converted and exported models against ours, as JSON.

For the fixture-sized Swin and R50 models (every weight random): the class and mask logits of
ours -> transformers and of a transformers-initialised model -> ours on a real photo (320x448),
and ONNX Runtime against PyTorch on both sample photos resized to two test sizes.

    python tools/benchmarks/export_parity.py --out bench_results/export_parity.json
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
from bench_common import write_results  # the script's folder is on sys.path
from detectron2.modeling import build_model
from PIL import Image

import mask2former  # noqa: F401  (registers the model and datasets)
from mask2former.engine import build_config
from mask2former.export import ExportableMaskFormer, deploy_metadata, export_onnx
from mask2former.hf.convert import class_names_for, from_hf, query_logits, to_hf
from mask2former_onnx import OnnxPredictor

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    "swin": "tests/fixtures/official_tiny_swin/config_full.yaml",
    "r50": "tests/fixtures/official_tiny/config_full.yaml",
}
PHOTOS = sorted((REPO / "tests/data/samples/coco_panoptic/images").glob("*.jpg"))


def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _photo(index: int, size=None) -> np.ndarray:
    image = Image.open(PHOTOS[index]).convert("RGB")
    return np.asarray(image if size is None else image.resize(size[::-1], Image.BILINEAR))


def _input(model, image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image.copy()).permute(2, 0, 1).float()[None]
    return (x - model.pixel_mean[None]) / model.pixel_std[None]


def _max_abs(a, b) -> list:
    return [float((p - q).abs().max()) for p, q in zip(a, b)]


def measure(kind: str) -> dict:
    cfg = build_config(str(REPO / CONFIGS[kind]), ["MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    ours = _randomize(build_model(cfg))
    hf_model = to_hf(cfg, ours.state_dict(), class_names_for(cfg)).eval()
    x = _input(ours, _photo(0, (320, 448)))
    result = {
        "ours_to_hf_max_abs_[class,mask]": _max_abs(
            query_logits(ours, x), query_logits(hf_model, x)
        )
    }
    torch.manual_seed(1)
    hf_random = _randomize(transformers.Mask2FormerForUniversalSegmentation(hf_model.config))
    cfg_back, state = from_hf(hf_random)
    back = build_model(cfg_back).eval()
    back.load_state_dict(state)
    x = _input(back, _photo(1, (320, 448)))
    result["hf_to_ours_max_abs_[class,mask]"] = _max_abs(
        query_logits(hf_random, x), query_logits(back, x)
    )

    wrapper = ExportableMaskFormer(ours, cfg.INPUT.FORMAT).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "model.onnx")
        export_onnx(wrapper, path, metadata=deploy_metadata(ours, cfg))
        predictor = OnnxPredictor(path, num_threads=2)
        for short in (256, 416):
            predictor.metadata["min_size_test"], predictor.metadata["max_size_test"] = short, 640
            for index in range(len(PHOTOS)):
                image, _ = predictor.preprocess(_photo(index))
                got = predictor.run(image)
                ref = wrapper.reference_outputs(ours, torch.from_numpy(image))
                h, w = image.shape[-2:]
                key = f"onnx_vs_ours_max_rel_[logits,masks]_photo{index}_{h}x{w}"
                result[key] = [
                    float(np.abs(g - r.numpy()).max() / r.abs().max()) for g, r in zip(got, ref)
                ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    write_results({kind: measure(kind) for kind in CONFIGS}, args.out)


if __name__ == "__main__":
    main()
