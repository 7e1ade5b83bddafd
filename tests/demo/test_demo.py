"""The demo: batched prediction equals one-by-one prediction, and the CLI writes pictures of images
and of a video."""

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs/quick_schedules/Panoptic-R50-instant.yaml"
IMAGES = sorted((REPO / "tests/data/samples/coco_panoptic/images").glob("*.jpg"))


def _load_demo_module(name: str):
    sys.path.insert(0, str(REPO / "demo"))
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "demo" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "demo"))


demo = _load_demo_module("demo")
predictor_module = _load_demo_module("predictor")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init instant model saved as a training checkpoint."""
    torch.manual_seed(0)
    args = demo.get_parser().parse_args(["--config-file", str(CONFIG), "--output", "unused"])
    model = build_model(demo.setup_cfg(args))
    out = tmp_path_factory.mktemp("weights")
    DetectionCheckpointer(model, save_dir=str(out)).save("model")
    return out / "model.pth"


def _args(weights: Path, *extra: str):
    opts = ["--opts", "MODEL.WEIGHTS", str(weights)]
    return demo.get_parser().parse_args(["--config-file", str(CONFIG), *extra, *opts])


def test_batched_equals_one_by_one(weights: Path) -> None:
    cfg = demo.setup_cfg(_args(weights, "--output", "unused"))
    predictor = predictor_module.BatchPredictor(cfg, batch_size=2)
    # Same size, so batching adds no padding: results must be equal.
    images = [cv2.imread(str(IMAGES[0])), cv2.imread(str(IMAGES[0]))[:, ::-1].copy()]
    batched = predictor(images)
    for image, result in zip(images, batched):
        (single,) = predictor([image])
        torch.testing.assert_close(result["sem_seg"], single["sem_seg"], rtol=1e-4, atol=1e-5)
        assert torch.equal(result["panoptic_seg"][0], single["panoptic_seg"][0])
        assert result["sem_seg"].shape[1:] == image.shape[:2]


def test_predict_stream_keeps_order_and_remainder(weights: Path) -> None:
    cfg = demo.setup_cfg(_args(weights, "--output", "unused"))
    predictor = predictor_module.BatchPredictor(cfg, batch_size=2)
    images = [cv2.imread(str(p)) for p in IMAGES] + [cv2.imread(str(IMAGES[0]))]
    out = list(predictor.predict_stream(images))
    assert len(out) == 3
    for (image, result), original in zip(out, images):
        assert image is original
        assert result["panoptic_seg"][0].shape == original.shape[:2]


def test_cli_on_images_and_video(weights: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "vis"
    demo.main(
        ["--config-file", str(CONFIG), "--input", *map(str, IMAGES), "--output", str(out_dir)]
        + ["--opts", "MODEL.WEIGHTS", str(weights)]
    )
    for path in IMAGES:
        drawn = cv2.imread(str(out_dir / path.name))
        assert drawn is not None and drawn.shape == cv2.imread(str(path)).shape

    video = tmp_path / "clip.mp4"
    frame = cv2.imread(str(IMAGES[0]))[:426, :640]  # even sides: what mp4v encodes exactly
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, frame.shape[1::-1])
    for shift in range(3):
        writer.write(np.roll(frame, 10 * shift, axis=1))
    writer.release()
    out_video = tmp_path / "out.mp4"
    demo.main(
        ["--config-file", str(CONFIG), "--video-input", str(video), "--output", str(out_video)]
        + ["--opts", "MODEL.WEIGHTS", str(weights)]
    )
    frames = list(predictor_module.read_video_frames(str(out_video)))
    assert len(frames) == 3 and frames[0].shape == frame.shape


def test_cli_rejects_missing_input(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        demo.main(
            ["--config-file", str(CONFIG), "--input", str(tmp_path / "nope*.jpg")]
            + ["--output", str(tmp_path), "--opts", "MODEL.WEIGHTS", str(weights)]
        )
