"""Mask2Former demo on images, folders of images, a video or a webcam.

    python demo/demo.py --config-file configs/coco/panoptic-segmentation/<recipe>.yaml \
        --input img1.jpg 'more/*.jpg' folder/ --output out/ --save-json \
        --opts MODEL.WEIGHTS model_final.pkl
    python demo/demo.py --config-file <yaml> --video-input clip.mp4 --output out.mp4 \
        --opts MODEL.WEIGHTS model_final.pkl
    python demo/demo.py --config-file <yaml> --webcam --opts MODEL.WEIGHTS model_final.pkl

Inputs are read a few at a time ahead of the model (memory does not grow with their number),
upright (EXIF orientation) and in the config's INPUT.FORMAT. A file that cannot be read or
predicted is reported by name and skipped; the run ends with a summary and exit code 1 if any
input failed. Without --output, pictures are shown in a window (as the official demo).

--confidence-threshold (default 0.5): an instance is drawn when its score is above it; a
panoptic query becomes a segment when its class probability is above both it and
MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD (the demo raises that key to it, so it also shapes
the panoptic results saved); semantic maps are drawn in full. --save-json writes every instance
whatever its score (COCO AP needs them all).
"""

import argparse
import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import Iterator

import cv2
import numpy as np
import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from detectron2.config import CfgNode  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from input_stream import Inputs, list_inputs, read_ahead, read_images  # noqa: E402
from predictor import BatchPredictor, draw_prediction, read_video_frames  # noqa: E402
from result_writer import JsonResults, coco_image_ids, picture_paths  # noqa: E402

import mask2former  # noqa: E402,F401  (registers the model)
from mask2former.config import build_config  # noqa: E402

logger = logging.getLogger("mask2former.demo")
WINDOW_NAME = "Mask2Former"
ESC = 27


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """The validated, frozen config of ``--config-file`` and ``--opts``, with the panoptic query
    threshold raised to ``--confidence-threshold``."""
    cfg = build_config(args.config_file, args.opts)
    threshold = getattr(args, "confidence_threshold", 0.0)
    test = cfg.MODEL.MASK_FORMER.TEST
    if test.PANOPTIC_ON and threshold > test.OBJECT_MASK_THRESHOLD:
        logger.info(
            "panoptic: MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD %s -> %s "
            "(--confidence-threshold)",
            test.OBJECT_MASK_THRESHOLD,
            threshold,
        )
        cfg.defrost()
        test.OBJECT_MASK_THRESHOLD = threshold
        cfg.freeze()
    return cfg


def _threshold(value: str) -> float:
    threshold = float(value)
    if not 0.0 <= threshold <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return threshold


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--webcam", action="store_true", help="take frames from camera 0")
    parser.add_argument("--video-input", help="a video file")
    parser.add_argument("--input", nargs="+", help="image files, glob patterns or folders")
    parser.add_argument(
        "--output",
        help="a folder or a picture file (images), a video file (video); "
        "if not given, results are shown in a window",
    )
    parser.add_argument(
        "--confidence-threshold", type=_threshold, default=0.5, help="minimum score drawn"
    )
    parser.add_argument("--save-json", action="store_true", help="also write results files")
    parser.add_argument("--batch-size", type=_positive, default=4, help="images per model run")
    parser.add_argument(
        "--read-ahead", type=_positive, help="images read ahead of the model (default: batch)"
    )
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    return parser


class Summary:
    """What became of each input: written, or failed with a reason (logged as it happens)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.written = 0
        self.failed: list[tuple[str, str]] = []

    def fail(self, name: str, reason: str) -> None:
        logger.error("%s: %s (skipped)", name, reason)
        self.failed.append((name, reason))

    def report(self, destination: str) -> int:
        """Log the summary; returns the exit code (1 if any input failed)."""
        seconds = time.perf_counter() - self.start
        logger.info(
            "%d written to %s, %d failed (%.1fs)",
            self.written,
            destination,
            len(self.failed),
            seconds,
        )
        if self.failed:
            listing = "\n".join(f"  {name}: {reason}" for name, reason in self.failed)
            logger.error("%d inputs failed:\n%s", len(self.failed), listing)
        return 1 if self.failed else 0


def _progress_bar(total: int | None, unit: str) -> tqdm.tqdm:
    """A progress bar on stderr; with ``total`` it shows the time left."""
    return tqdm.tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def _logs_above(progress: tqdm.tqdm) -> contextlib.AbstractContextManager:
    """The demo's log lines printed above the progress bar rather than through it."""
    return logging_redirect_tqdm([logging.getLogger("mask2former")], tqdm_class=type(progress))


def _draw(
    image: np.ndarray, prediction: dict, predictor: BatchPredictor, threshold: float, fmt: str
) -> np.ndarray:
    """The picture of a prediction: BGR (H, W, 3), contiguous, as OpenCV writes and shows."""
    rgb = draw_prediction(
        image, prediction, predictor.metadata, image_format=fmt, confidence_threshold=threshold
    )
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _show(picture_bgr: np.ndarray, wait_ms: int) -> bool:
    """Show a picture in the demo window; False when the user pressed Esc."""
    cv2.imshow(WINDOW_NAME, picture_bgr)
    return cv2.waitKey(wait_ms) != ESC


def _open_window() -> None:
    try:
        cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_NORMAL)
    except cv2.error as error:
        raise SystemExit(
            f"cannot open a window to show the results ({error.err}); give --output"
        ) from None


def _save(
    picture: np.ndarray,
    target: str,
    results: JsonResults | None,
    prediction: dict,
    image_id: object,
    path: str,
) -> str | None:
    """Write the picture (and the results files); returns what went wrong, or None."""
    try:
        if not cv2.imwrite(target, picture):
            return f"OpenCV could not write {target}"
        if results is not None:
            stem = os.path.splitext(os.path.basename(target))[0]
            results.add(prediction, image_id, os.path.basename(path), stem)
    except (OSError, ValueError, cv2.error) as error:
        return f"cannot write its results: {error}"
    return None


def run_on_images(
    args: argparse.Namespace,
    cfg: CfgNode,
    predictor: BatchPredictor,
    inputs: Inputs,
    summary: Summary,
) -> int:
    try:
        targets = picture_paths(inputs.paths, args.output, args.save_json) if args.output else {}
    except ValueError as error:
        raise SystemExit(str(error)) from None
    results = None
    if targets:  # all in one folder
        folder = os.path.dirname(next(iter(targets.values()))) or "."
        os.makedirs(folder, exist_ok=True)
        results = JsonResults(folder, predictor.metadata) if args.save_json else None
    else:
        _open_window()
    image_ids = coco_image_ids(inputs.paths)
    image_format, threshold = cfg.INPUT.FORMAT, args.confidence_threshold
    depth = args.read_ahead or args.batch_size

    with _progress_bar(len(inputs.paths), "img") as progress, _logs_above(progress):

        def fail(path: str, reason: str) -> None:
            summary.fail(path, reason)
            progress.update()

        def readable() -> Iterator[tuple[str, np.ndarray]]:
            for path, image, reason in read_ahead(read_images(inputs.paths, image_format), depth):
                if reason is None:
                    yield path, image
                else:
                    fail(path, reason)

        def prediction_failed(path: str, error: Exception) -> None:
            fail(path, f"prediction failed: {error}")

        predictions = predictor.predict_tagged(readable(), image_format, prediction_failed)
        try:
            for path, image, prediction in predictions:
                try:
                    picture = _draw(image, prediction, predictor, threshold, image_format)
                except (IndexError, KeyError, ValueError) as error:  # e.g. classes vs metadata
                    fail(path, f"cannot draw its results: {type(error).__name__}: {error}")
                    continue
                if not targets:
                    progress.update()
                    if not _show(picture, 0):
                        break
                    continue
                error = _save(picture, targets[path], results, prediction, image_ids[path], path)
                if error is not None:
                    fail(path, error)
                    continue
                summary.written += 1
                progress.update()
        finally:
            predictions.close()  # stops the reading thread
            if results is not None:
                results.close()
    return summary.report(args.output or "the window")


def _video_writer(path: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    fourcc = "MJPG" if path.lower().endswith(".avi") else "mp4v"
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise SystemExit(f"cannot write video {path!r} (codec {fourcc}); try a .mp4 or .avi name")
    return writer


def run_on_video(
    args: argparse.Namespace, predictor: BatchPredictor, capture: cv2.VideoCapture
) -> int:
    """Predict the frames of ``capture`` (a video file, or the webcam when ``args.webcam``):
    written to a video file, or shown in a window without ``--output``."""
    if not capture.isOpened():
        raise SystemExit(f"cannot open {'camera 0' if args.webcam else repr(args.video_input)}")
    expected = 0 if args.webcam else int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    output = args.output
    if output and os.path.isdir(output):
        name = os.path.splitext(os.path.basename(args.video_input))[0] + ".mp4"
        output = os.path.join(output, name)
    if not output:
        _open_window()
    # The webcam is predicted frame by frame as it comes; a file is batched and read ahead.
    frames = read_video_frames(capture)
    if not args.webcam:
        frames = read_ahead(frames, args.read_ahead or args.batch_size)
    predictions = predictor.predict_stream(frames)
    writer, count = None, 0
    with _progress_bar(expected or None, "frame") as progress, _logs_above(progress):
        try:
            for frame, prediction in predictions:
                picture = _draw(frame, prediction, predictor, args.confidence_threshold, "BGR")
                count += 1
                progress.update()
                if not output:
                    if not _show(picture, 1):
                        break
                    continue
                if writer is None:
                    writer = _video_writer(output, fps, (picture.shape[1], picture.shape[0]))
                writer.write(picture)
        finally:
            predictions.close()  # stops the reading thread before the capture is released
            capture.release()
            if writer is not None:
                writer.release()
            if not output:
                cv2.destroyAllWindows()
    if output and writer is None:
        logger.error("%s has no frames: nothing written", args.video_input)
        return 1
    if expected and count < expected and output:
        logger.warning("%s: %d of its %d frames could be read", args.video_input, count, expected)
    logger.info("%d frames%s", count, f" written to {output}" if output else " shown")
    return 0


def check_arguments(args: argparse.Namespace) -> None:
    sources = [bool(args.input), bool(args.video_input), args.webcam]
    if sum(sources) != 1:
        raise SystemExit("give exactly one of --input, --video-input and --webcam")
    if args.webcam and args.output:
        raise SystemExit("--webcam shows the frames in a window; --output is not used with it")
    if args.save_json and not (args.input and args.output):
        raise SystemExit("--save-json needs --input and an --output folder or picture")


@contextlib.contextmanager
def _collector_keeps_up() -> Iterator[None]:
    """Make the garbage collector keep up with the run (memory flat in the number of inputs).

    Drawing leaves reference cycles (detectron2's ``VisImage`` is a matplotlib figure holding the
    picture), which only the collector's full passes free. With the model and libraries loaded
    (~400k objects) those passes are slow, so CPython runs them rarely and pictures pile up.
    Frozen for the run, the objects existing now are skipped: full passes only visit what the run
    makes, are cheap, and come often enough.
    """
    gc.collect()
    gc.freeze()
    gc.collect()  # a full pass over nothing, which resets the pace of full passes
    try:
        yield
    finally:
        gc.unfreeze()


def main(argv: list[str] | None = None) -> int:
    """Runs the demo; returns the exit code (1 when an input failed)."""
    args = get_parser().parse_args(argv)
    setup_logger(name="mask2former")
    check_arguments(args)
    cfg = setup_cfg(args)
    if args.input:
        inputs = list_inputs(args.input)
        summary = Summary()
        for argument, reason in inputs.unmatched:
            summary.fail(argument, reason)
        if not inputs.paths:  # nothing to predict: no model to load
            return summary.report(args.output or "the window")
        predictor = BatchPredictor(cfg, batch_size=args.batch_size)
        with _collector_keeps_up():
            return run_on_images(args, cfg, predictor, inputs, summary)
    predictor = BatchPredictor(cfg, batch_size=1 if args.webcam else args.batch_size)
    capture = cv2.VideoCapture(0) if args.webcam else cv2.VideoCapture(args.video_input)
    with _collector_keeps_up():
        return run_on_video(args, predictor, capture)


if __name__ == "__main__":
    sys.exit(main())
