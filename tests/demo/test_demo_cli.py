"""The demo end to end on a tiny random-weight model and small images (issue 10 item 4, and the
demo's bad inputs of issue 9): bad files reported and skipped, inputs streamed, EXIF rotation,
the confidence threshold, --save-json read by the COCO tools, webcam, video, and the official
YAML on a machine without CUDA."""

import io
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List

import cv2
import numpy as np
import pytest
from demo_helpers import CONFIG, INSTANCE_CONFIG, REPO, demo_argv, load_demo_module
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.utils.visualizer import Visualizer
from panopticapi.evaluation import pq_compute_single_core
from PIL import Image, ImageFile
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from mask2former.config import build_config
from mask2former.data.panoptic_format import rgb_to_id
from mask2former.utils.boxes import mask_to_xywh

input_stream = load_demo_module("input_stream")
predictor_module = load_demo_module("predictor")
DATASET = "coco_2017_val_panoptic_with_sem_seg"  # DATASETS.TEST of the instant config


def run(demo: ModuleType, weights: Path, *args: str, **kwargs) -> int:
    return demo.main(demo_argv(weights, *args, **kwargs))


def corrupt_png() -> bytes:
    """A PNG with one flipped byte that PIL alone decodes to wrong pixels without an error."""
    gradient = np.linspace(0, 255, 320).astype(np.uint8)[None, :, None]  # [1, 320, 1]
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.broadcast_to(gradient, (240, 320, 3)))).save(out, "PNG")
    data = bytearray(out.getvalue())
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


def test_bad_files_are_reported_and_skipped(
    demo: ModuleType,
    tiny_weights: Path,
    small_images: List[Path],
    tmp_path: Path,
    mask2former_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for path in small_images:
        shutil.copy(path, folder / path.name)
    data = small_images[0].read_bytes()
    bad = {
        "truncated.jpg": "corrupt or truncated file",
        "corrupt.png": "corrupt or truncated file",
        "notes.jpg": "not an image PIL can read",
        "missing.jpg": "File not found",
        # Between the good images in the same batch: the model fails on it (zero height after
        # resizing), the batch is run again image by image.
        "000000200000_thin.png": "prediction failed",
    }
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "corrupt.png").write_bytes(corrupt_png())
    (folder / "notes.jpg").write_text("not a picture\n")
    cv2.imwrite(str(folder / "000000200000_thin.png"), np.zeros((1, 2000, 3), np.uint8))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some libraries set it

    argv = ["--input", str(folder), str(folder / "missing.jpg"), "--output", str(out)]
    assert run(demo, tiny_weights, *argv, "--batch-size", "2") == 1

    assert sorted(p.name for p in out.iterdir()) == [p.name for p in small_images]
    for name, reason in bad.items():
        lines = mask2former_log.text.splitlines()
        assert any(f"{name}: " in line and reason in line for line in lines), name
    assert f"2 written to {out}, 5 failed" in mask2former_log.text
    listing = mask2former_log.records[-1].getMessage()
    assert listing.startswith("5 inputs failed:") and all(name in listing for name in bad)
    assert "7/7" in capsys.readouterr().err  # the progress bar counts failures too


def test_inputs_are_streamed(
    demo: ModuleType, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), rng.integers(0, 255, (24, 32, 3), np.uint8))
    started: List[str] = []
    finished: List[str] = []
    held: List[int] = []  # images read (or being read) and not yet written, at each read
    real_read, real_write = input_stream.read_image, cv2.imwrite

    def counting_read(path: str, image_format: str) -> np.ndarray:
        started.append(path)
        held.append(len(started) - len(finished))
        return real_read(path, image_format)

    def counting_write(path: str, image: np.ndarray, *args) -> bool:
        finished.append(path)
        return real_write(path, image, *args)

    monkeypatch.setattr(input_stream, "read_image", counting_read)
    monkeypatch.setattr(cv2, "imwrite", counting_write)
    argv = ["--input", str(folder), "--output", str(tmp_path / "out")]
    assert run(demo, tiny_weights, *argv, "--batch-size", "2", "--read-ahead", "3") == 0
    assert len(finished) == 10
    assert max(held) <= 2 + 3  # a batch + the read-ahead, however many inputs


def test_exif_rotated_input_is_drawn_upright(
    demo: ModuleType, tiny_weights: Path, small_images: List[Path], tmp_path: Path
) -> None:
    upright = cv2.imread(str(small_images[0]))[:, :, ::-1]  # [43, 64, 3] RGB
    exif = Image.Exif()
    exif[274] = 6  # stored turned 90 degrees counter-clockwise; viewers turn it back
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright)))
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    out = tmp_path / "out"
    argv = ["--input", str(tmp_path / "phone.jpg"), "--output", str(out)]
    assert run(demo, tiny_weights, *argv) == 0
    assert cv2.imread(str(out / "phone.jpg")).shape == upright.shape


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Dict[str, List]:
    """What the demo hands to detectron2's Visualizer: instance scores and panoptic segments."""
    seen: Dict[str, List] = {"scores": [], "segments": []}
    draw_instances = Visualizer.draw_instance_predictions
    draw_panoptic = Visualizer.draw_panoptic_seg_predictions

    def spy_instances(self, predictions, *args, **kwargs):
        seen["scores"].append(predictions.scores.tolist())
        return draw_instances(self, predictions, *args, **kwargs)

    def spy_panoptic(self, panoptic_seg, segments_info, *args, **kwargs):
        seen["segments"].append(len(segments_info))
        return draw_panoptic(self, panoptic_seg, segments_info, *args, **kwargs)

    monkeypatch.setattr(Visualizer, "draw_instance_predictions", spy_instances)
    monkeypatch.setattr(Visualizer, "draw_panoptic_seg_predictions", spy_panoptic)
    return seen


def test_confidence_threshold_draws_fewer_segments(
    demo: ModuleType,
    tiny_weights_of: Callable[[Path], Path],
    small_images: List[Path],
    tmp_path: Path,
    drawn: Dict[str, List],
) -> None:
    images = ["--input", *map(str, small_images), "--output", str(tmp_path / "out")]
    weights = tiny_weights_of(INSTANCE_CONFIG)
    for threshold in ("0.0", "0.1"):
        argv = [*images, "--confidence-threshold", threshold, "--save-json"]
        assert run(demo, weights, *argv, config=INSTANCE_CONFIG) == 0
    everything, confident = drawn["scores"][:2], drawn["scores"][2:]
    assert [len(s) for s in everything] == [100, 100]  # TEST.DETECTIONS_PER_IMAGE
    assert 0 < sum(map(len, confident)) < 200
    assert min(min(s) for s in confident if s) > 0.1
    # The results saved are all the model's, whatever is drawn.
    saved = json.loads((tmp_path / "out" / "coco_instances_results.json").read_text())
    assert len(saved) == 200 and min(r["score"] for r in saved) < 0.1

    weights = tiny_weights_of(CONFIG)
    for threshold in ("0.0", "0.9"):
        assert run(demo, weights, *images, "--confidence-threshold", threshold) == 0
    everything, confident = drawn["segments"][:2], drawn["segments"][2:]
    assert sum(everything) >= 2 and sum(confident) < sum(everything)


def test_save_json_is_read_by_the_coco_tools(
    demo: ModuleType, tiny_weights: Path, small_images: List[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["--input", *map(str, small_images), "--output", str(out), "--save-json"]
    assert run(demo, tiny_weights, *argv, "--confidence-threshold", "0.0") == 0
    metadata = MetadataCatalog.get(DATASET)
    shapes = {int(p.stem): cv2.imread(str(p)).shape[:2] for p in small_images}

    # Instances: every one (whatever its score), COCO ids, loadable with pycocotools.
    thing_ids = metadata.thing_dataset_id_to_contiguous_id
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "height": h, "width": w} for i, (h, w) in shapes.items()],
        "annotations": [],
        "categories": [{"id": i, "name": str(i)} for i in thing_ids],
    }
    gt.createIndex()
    results = gt.loadRes(str(out / "coco_instances_results.json"))
    annotations = list(results.anns.values())
    assert annotations
    assert {a["file_name"] for a in annotations} == {p.name for p in small_images}
    for annotation in annotations[::37]:
        assert annotation["category_id"] in thing_ids
        mask = mask_util.decode(annotation["segmentation"])
        assert mask.shape == shapes[annotation["image_id"]]

    # Panoptic: PNG ids and segments_info agree.
    panoptic = json.loads((out / "panoptic.json").read_text())
    categories = {c["id"]: c for c in panoptic["categories"]}
    assert len(categories) == len(metadata.stuff_classes)
    num_segments = 0
    for annotation in panoptic["annotations"]:
        ids = rgb_to_id(np.asarray(Image.open(out / "panoptic" / annotation["file_name"])))
        assert ids.shape == shapes[annotation["image_id"]]
        segments = annotation["segments_info"]
        assert set(np.unique(ids)) - {0} == {s["id"] for s in segments}
        for segment in segments:
            mask = ids == segment["id"]
            assert segment["area"] == mask.sum() and segment["bbox"] == mask_to_xywh(mask)
            assert categories[segment["category_id"]]["isthing"] == segment["isthing"]
        num_segments += len(segments)
    assert num_segments >= 2
    # panopticapi's PQ reads it: against itself, every segment is a perfect match.
    folder = str(out / "panoptic")
    matched = [(a, a) for a in panoptic["annotations"]]
    stats = pq_compute_single_core(0, matched, folder, folder, categories)
    for segment in (s for a in panoptic["annotations"] for s in a["segments_info"]):
        stat = stats[segment["category_id"]]
        assert stat.tp >= 1 and stat.fp == stat.fn == 0 and stat.iou == pytest.approx(stat.tp)

    # Semantic: a class index per pixel, the classes in a table.
    classes = json.loads((out / "sem_seg_classes.json").read_text())["classes"]
    assert len(classes) == len(metadata.stuff_classes)
    assert classes[0] == {"index": 0, "name": "person", "dataset_id": 1}
    # Read from the file as the model wants it: the same labels as the predictor on OpenCV's BGR.
    args = demo.get_parser().parse_args(demo_argv(tiny_weights, *argv))
    predictor = predictor_module.BatchPredictor(demo.setup_cfg(args))
    for path in small_images:
        labels = np.asarray(Image.open(out / "sem_seg" / f"{path.stem}.png"))
        (expected,) = predictor([cv2.imread(str(path))])
        np.testing.assert_array_equal(labels, expected["sem_seg"].argmax(0).numpy())
        assert labels.max() < len(classes)


class FakeCapture:
    """A camera that yields ``frames`` and then nothing, as ``cv2.VideoCapture`` does."""

    def __init__(self, frames: List[np.ndarray]) -> None:
        self.frames = list(frames)
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


@pytest.mark.parametrize("keys, shown_frames", [([-1] * 4, 4), ([-1, -1, 27, -1], 3)])
def test_webcam_shows_frames_until_esc(
    demo: ModuleType,
    tiny_weights: Path,
    small_images: List[Path],
    monkeypatch: pytest.MonkeyPatch,
    keys: List[int],
    shown_frames: int,
) -> None:
    frame = cv2.imread(str(small_images[0]))
    cameras: List[FakeCapture] = []
    shown: List[tuple] = []

    def open_camera(source: object) -> FakeCapture:
        assert source == 0
        cameras.append(FakeCapture([frame] * 4))
        return cameras[-1]

    pressed = iter(keys)
    monkeypatch.setattr(cv2, "VideoCapture", open_camera)
    monkeypatch.setattr(cv2, "namedWindow", lambda *args: None)
    monkeypatch.setattr(cv2, "imshow", lambda name, picture: shown.append(picture.shape))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(pressed))
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    assert run(demo, tiny_weights, "--webcam") == 0
    assert shown == [frame.shape] * shown_frames
    assert len(cameras) == 1 and cameras[0].released


def test_video_output_has_every_frame_at_the_input_size(
    demo: ModuleType,
    tiny_weights: Path,
    small_images: List[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    frame = cv2.resize(cv2.imread(str(small_images[0])), (64, 48))  # even sides for mp4v
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for shift in range(5):
        writer.write(np.roll(frame, 8 * shift, axis=1))
    writer.release()
    out = tmp_path / "out.mp4"
    assert run(demo, tiny_weights, "--video-input", str(clip), "--output", str(out)) == 0
    frames = list(predictor_module.read_video_frames(str(out)))
    assert len(frames) == 5 and all(f.shape == frame.shape for f in frames)
    assert "5/5" in capsys.readouterr().err  # a progress bar with the frame count: an ETA


@pytest.mark.slow
def test_official_yaml_runs_the_demo_and_default_predictor(
    demo: ModuleType,
    no_cuda: None,
    small_images: List[Path],
    tmp_path: Path,
    mask2former_log: pytest.LogCaptureFixture,
) -> None:
    """``MODEL.DEVICE`` is the official file's (cuda, detectron2's default), not overridden."""
    official = REPO / "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml"
    small = ["MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96"]
    argv = ["--config-file", str(official), "--input", str(small_images[0])]
    assert demo.main([*argv, "--output", str(tmp_path), "--opts", *small]) == 0
    image = cv2.imread(str(small_images[0]))
    assert cv2.imread(str(tmp_path / small_images[0].name)).shape == image.shape
    fallback = [r for r in mask2former_log.records if "CUDA is not available" in r.getMessage()]
    assert len(fallback) == 1

    prediction = DefaultPredictor(build_config(str(official), small))(image)
    assert prediction["sem_seg"].device.type == "cpu"
    assert prediction["panoptic_seg"][0].shape == image.shape[:2]
