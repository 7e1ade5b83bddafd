"""Video Mask2Former demo: segment and track the instances of a video, write it overlaid.

    python demo/demo_video.py \
        --config-file configs/youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml \
        --input clip.mp4 --output out.mp4 --opts MODEL.WEIGHTS model_final_3c8ec9.pkl
    python demo/demo_video.py --config-file <yaml> --input frames_dir/ --output out_dir/ \
        --save-frames --opts MODEL.WEIGHTS <weights>

``--input`` is a video file, a folder of frames (sorted by name) or frame images (paths or glob
patterns, in the given order). The whole video is one model input, as in the official
``demo_video``; ``--window-size N`` bounds the memory of long videos (frames go through the
backbone N at a time: ``MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE``). Each predicted instance above
``--confidence-threshold`` keeps one colour on every frame. ``--output`` is a video file (.mp4,
.avi) or a folder, which gets ``visualization.mp4`` (and, with ``--save-frames``, a PNG per frame).
"""

import argparse
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from detectron2.config import CfgNode  # noqa: E402
from detectron2.utils.colormap import colormap  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from detectron2.utils.visualizer import ColorMode, Visualizer  # noqa: E402
from input_stream import list_inputs, read_images  # noqa: E402
from predictor import BatchPredictor, metadata_for, read_video_frames  # noqa: E402

import mask2former  # noqa: E402,F401  (registers the model)
from mask2former.config import build_config  # noqa: E402

logger = logging.getLogger("mask2former.demo_video")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", nargs="+", required=True, help="a video, a folder or frames")
    parser.add_argument("--output", required=True, help="a video file or a folder")
    parser.add_argument("--save-frames", action="store_true", help="also write PNG frames")
    parser.add_argument("--confidence-threshold", type=float, default=0.5)
    parser.add_argument("--fps", type=float, default=None, help="default: the input's, or 10")
    parser.add_argument("--window-size", type=int, default=0, help="frames per window (0: all)")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    return parser


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """The validated, frozen config of ``--config-file``, ``--window-size`` and ``--opts``."""
    opts = list(args.opts)
    if args.window_size > 0:
        opts = ["MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE", "True"] + opts
        opts = ["MODEL.MASK_FORMER.TEST.WINDOW_SIZE", str(args.window_size)] + opts
    return build_config(args.config_file, opts)


def read_frames(inputs: Sequence[str]) -> Tuple[List[np.ndarray], float]:
    """BGR uint8 frames [H, W, 3] of ``--input`` and the video's frame rate (0 if unknown)."""
    if len(inputs) == 1 and inputs[0].lower().endswith(VIDEO_SUFFIXES):
        frames = list(read_video_frames(inputs[0]))
        fps = cv2.VideoCapture(inputs[0]).get(cv2.CAP_PROP_FPS)
        if not frames:
            raise ValueError(f"video {inputs[0]!r} has no frames")
        return frames, fps
    listed = list_inputs(inputs)  # files, glob patterns or a folder of frames, sorted
    if listed.unmatched:
        raise FileNotFoundError(
            "; ".join(f"--input {argument!r}: {reason}" for argument, reason in listed.unmatched)
        )
    frames = []
    for path, frame, reason in read_images(listed.paths, "BGR"):
        if reason is not None:  # a video with a frame missing is not that video
            raise ValueError(f"frame {path!r}: {reason}")
        frames.append(frame)
    if any(f.shape != frames[0].shape for f in frames):
        raise ValueError(f"frames of {inputs} differ in size: a video has one frame size")
    return frames, 0.0


class VideoPredictor:
    """Predicts on a whole video (BGR uint8 frames): the image demo's predictor loads
    ``cfg.MODEL.WEIGHTS`` and gives the test resize (``ResizeShortestEdge(INPUT.MIN_SIZE_TEST,
    INPUT.MAX_SIZE_TEST)``, the same for every frame) and channel order; results at the original
    size (the official result dict)."""

    def __init__(self, cfg: CfgNode) -> None:
        self.predictor = BatchPredictor(cfg, batch_size=1)

    @torch.no_grad()
    def __call__(self, frames_bgr: Sequence[np.ndarray]) -> Dict[str, Any]:
        predictor = self.predictor
        height, width = frames_bgr[0].shape[:2]
        transform = predictor.aug.get_transform(frames_bgr[0])
        tensors = []
        for frame in frames_bgr:
            image = frame[:, :, ::-1] if predictor.input_format == "RGB" else frame
            image = transform.apply_image(image)
            tensors.append(torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))))
        return predictor.model([{"image": tensors, "height": height, "width": width}])


def draw_tracks(
    frames_bgr: Sequence[np.ndarray], result: Dict[str, Any], metadata: Any, threshold: float
) -> List[np.ndarray]:
    """Overlay the predictions scoring above ``threshold``, one colour per prediction (a tracked
    instance) on every frame. Returns BGR uint8 frames."""
    kept = [i for i, score in enumerate(result["pred_scores"]) if score > threshold]
    names = metadata.get("thing_classes", None)
    labels = [
        f"{names[result['pred_labels'][i]] if names else result['pred_labels'][i]} "
        f"{result['pred_scores'][i] * 100:.0f}%"
        for i in kept
    ]
    palette = colormap(rgb=True, maximum=1)
    colors = [palette[n % len(palette)] for n in range(len(kept))]
    drawn = []
    for t, frame in enumerate(frames_bgr):
        vis = Visualizer(frame[:, :, ::-1], metadata, instance_mode=ColorMode.IMAGE)
        masks = [result["pred_masks"][i][t].numpy() for i in kept]
        present = [n for n, mask in enumerate(masks) if mask.any()]
        out = vis.overlay_instances(
            masks=[masks[n] for n in present] or None,
            labels=[labels[n] for n in present] or None,
            assigned_colors=[colors[n] for n in present] or None,
        )
        drawn.append(np.ascontiguousarray(out.get_image()[:, :, ::-1]))
    return drawn


def write_video(path: str, frames_bgr: Sequence[np.ndarray], fps: float) -> None:
    height, width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path!r}")
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()


def main(argv: Optional[List[str]] = None) -> str:
    """Run the demo; returns the path of the written video."""
    args = get_parser().parse_args(argv)
    setup_logger(name="mask2former")
    cfg = setup_cfg(args)
    frames, input_fps = read_frames(args.input)
    predictor = VideoPredictor(cfg)
    start = time.perf_counter()
    result = predictor(frames)
    logger.info("%d frames segmented in %.2fs", len(frames), time.perf_counter() - start)
    drawn = draw_tracks(frames, result, metadata_for(cfg), args.confidence_threshold)

    if args.output.lower().endswith(VIDEO_SUFFIXES):
        video_path = args.output
        os.makedirs(os.path.dirname(os.path.abspath(video_path)), exist_ok=True)
        frame_dir = os.path.splitext(video_path)[0] + "_frames"
    else:
        os.makedirs(args.output, exist_ok=True)
        video_path = os.path.join(args.output, "visualization.mp4")
        frame_dir = args.output
    write_video(video_path, drawn, args.fps or input_fps or 10.0)
    if args.save_frames:
        os.makedirs(frame_dir, exist_ok=True)
        for t, frame in enumerate(drawn):
            cv2.imwrite(os.path.join(frame_dir, f"{t:05d}.png"), frame)
    logger.info("wrote %s", video_path)
    return video_path


if __name__ == "__main__":
    main()
