"""The video demo (demo/demo_video.py) writes an overlaid video for a generated clip, from an mp4
or a folder of frames; the test reads it back and checks its frame count and size."""

from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from tests.helpers.scripts import load_demo_module

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs/quick_schedules/VIS-R50-instant.yaml"
FRAMES, HEIGHT, WIDTH = 4, 96, 128  # even sides: what mp4v encodes exactly


demo_video = load_demo_module("demo_video")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init instant video model saved as a training checkpoint."""
    torch.manual_seed(0)
    args = demo_video.get_parser().parse_args(
        ["--config-file", str(CONFIG), "--input", "unused", "--output", "unused"]
    )
    model = build_model(demo_video.setup_cfg(args))
    out = tmp_path_factory.mktemp("weights")
    DetectionCheckpointer(model, save_dir=str(out)).save("model")
    return out / "model.pth"


def _clip() -> List[np.ndarray]:
    """A disc moving right and a square moving down over a gray background (BGR)."""
    frames = []
    for t in range(FRAMES):
        frame = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
        cv2.circle(frame, (20 + 15 * t, 40), 14, (40, 40, 220), -1)
        cv2.rectangle(frame, (80, 10 + 12 * t), (105, 35 + 12 * t), (220, 120, 30), -1)
        frames.append(frame)
    return frames


def _read_back(path: Path) -> List[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def _run(weights: Path, *args: str) -> str:
    return demo_video.main(
        ["--config-file", str(CONFIG), *args, "--confidence-threshold", "0"]
        + ["--opts", "MODEL.WEIGHTS", str(weights)]
    )


def test_writes_the_overlaid_video_of_an_mp4(weights: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    demo_video.write_video(str(clip), _clip(), fps=5)
    out = tmp_path / "out.mp4"
    assert _run(weights, "--input", str(clip), "--output", str(out)) == str(out)
    frames = _read_back(out)
    assert len(frames) == FRAMES
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame in frames)
    # Predictions are drawn (threshold 0: all 10 of the random model): frames differ from input.
    inputs = _read_back(clip)
    assert np.abs(frames[0].astype(int) - inputs[0].astype(int)).mean() > 5


def test_folder_of_frames_with_windows_and_saved_frames(weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(_clip()):
        cv2.imwrite(str(folder / f"{t:05d}.png"), frame)
    out_dir = tmp_path / "vis"
    args = ["--input", str(folder), "--output", str(out_dir), "--save-frames"]
    video = _run(weights, *args, "--window-size", "2")
    assert video == str(out_dir / "visualization.mp4")
    frames = _read_back(out_dir / "visualization.mp4")
    assert len(frames) == FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)
    saved = sorted(out_dir.glob("*.png"))
    assert len(saved) == FRAMES and cv2.imread(str(saved[0])).shape == (HEIGHT, WIDTH, 3)
    # The same video from a whole-video pass: windows only bound the memory.
    whole = _run(weights, "--input", str(folder), "--output", str(tmp_path / "whole.mp4"))
    assert len(_read_back(Path(whole))) == FRAMES


def test_rejects_missing_input(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        _run(weights, "--input", str(tmp_path / "nope*.jpg"), "--output", str(tmp_path / "o.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no"):
        _run(weights, "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "o.mp4"))
