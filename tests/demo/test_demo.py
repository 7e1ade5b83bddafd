"""The demo's predictor: batched prediction equals one-by-one prediction, in order, from BGR or
RGB images; the CLI writes a picture per image."""

from pathlib import Path
from types import ModuleType
from typing import List

import cv2
import numpy as np
import pytest
import torch
from demo_helpers import demo_argv, load_demo_module

predictor_module = load_demo_module("predictor")


@pytest.fixture(scope="module")
def predictor(demo: ModuleType, tiny_weights: Path) -> object:
    args = demo.get_parser().parse_args(demo_argv(tiny_weights, "--input", "unused"))
    return predictor_module.BatchPredictor(demo.setup_cfg(args), batch_size=2)


def test_batched_equals_one_by_one(predictor: object, small_images: List[Path]) -> None:
    # Same size, so batching adds no padding: results must be equal.
    image = cv2.imread(str(small_images[0]))
    images = [image, image[:, ::-1].copy()]
    batched = predictor(images)
    for image, result in zip(images, batched):
        (single,) = predictor([image])
        torch.testing.assert_close(result["sem_seg"], single["sem_seg"], rtol=1e-4, atol=1e-5)
        assert torch.equal(result["panoptic_seg"][0], single["panoptic_seg"][0])
        assert result["sem_seg"].shape[1:] == image.shape[:2]
    # The same image given in RGB order.
    (from_rgb,) = predictor([images[0][:, :, ::-1]], image_format="RGB")
    torch.testing.assert_close(from_rgb["sem_seg"], batched[0]["sem_seg"], rtol=1e-4, atol=1e-5)


def test_predict_stream_keeps_order_and_remainder(
    predictor: object, small_images: List[Path]
) -> None:
    images = [cv2.imread(str(p)) for p in small_images] + [cv2.imread(str(small_images[0]))]
    out = list(predictor.predict_stream(images))
    assert len(out) == 3
    for (image, result), original in zip(out, images):
        assert image is original
        assert result["panoptic_seg"][0].shape == original.shape[:2]


def test_predict_tagged_skips_only_the_image_that_fails(predictor: object) -> None:
    good = np.full((24, 32, 3), 100, np.uint8)
    thin = np.zeros((1, 2000, 3), np.uint8)  # zero height once resized
    failed = []
    items = [("a", good), ("thin", thin), ("b", good), ("c", good)]
    out = list(predictor.predict_tagged(items, on_error=lambda tag, e: failed.append(tag)))
    assert [tag for tag, _, _ in out] == ["a", "b", "c"]
    assert failed == ["thin"]
    with pytest.raises(ValueError):  # without on_error, errors propagate
        list(predictor.predict_tagged(items))


def test_cli_writes_a_picture_per_image(
    demo: ModuleType, tiny_weights: Path, small_images: List[Path], tmp_path: Path
) -> None:
    out_dir = tmp_path / "vis"
    argv = demo_argv(tiny_weights, "--input", *map(str, small_images), "--output", str(out_dir))
    assert demo.main(argv) == 0
    for path in small_images:
        drawn = cv2.imread(str(out_dir / path.name))
        assert drawn is not None and drawn.shape == cv2.imread(str(path)).shape


def test_cli_reports_a_pattern_matching_nothing(
    demo: ModuleType,
    tiny_weights: Path,
    tmp_path: Path,
    mask2former_log: pytest.LogCaptureFixture,
) -> None:
    argv = ["--input", str(tmp_path / "nope*.jpg"), "--output", str(tmp_path)]
    assert demo.main(demo_argv(tiny_weights, *argv)) == 1
    assert "nope*.jpg: pattern matches no file" in mask2former_log.text
