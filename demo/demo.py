"""Mask2Former demo on images, a folder of images, or a video.

    python demo/demo.py --config-file configs/coco/panoptic-segmentation/<recipe>.yaml \
        --input img1.jpg img2.jpg --output out/ --opts MODEL.WEIGHTS model_final.pkl
    python demo/demo.py --config-file <yaml> --video-input clip.mp4 --output out.mp4 \
        --opts MODEL.WEIGHTS model_final.pkl
"""

import argparse
import logging
import os
import sys
import time

import cv2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from detectron2.config import CfgNode  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from predictor import (  # noqa: E402
    BatchPredictor,
    draw_prediction,
    expand_patterns,
    metadata_for,
    read_images,
    read_video_frames,
)

import mask2former  # noqa: E402,F401  (registers the model)
from mask2former.config import build_config  # noqa: E402

logger = logging.getLogger("mask2former.demo")


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """The validated, frozen config of ``--config-file`` and ``--opts``."""
    return build_config(args.config_file, args.opts)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", nargs="+", help="images or glob patterns")
    parser.add_argument("--video-input", help="a video file")
    parser.add_argument("--output", required=True, help="a folder (images) or a .mp4 file (video)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="mask2former")
    if bool(args.input) == bool(args.video_input):
        raise SystemExit("give exactly one of --input and --video-input")
    cfg = setup_cfg(args)
    predictor = BatchPredictor(cfg, batch_size=args.batch_size)
    metadata = metadata_for(cfg)

    if args.input:
        paths = expand_patterns(args.input)
        os.makedirs(args.output, exist_ok=True)
        images = read_images(paths)
        start = time.perf_counter()
        for path, (image, pred) in zip(paths, predictor.predict_stream(images)):
            out = os.path.join(args.output, os.path.basename(path))
            cv2.imwrite(out, draw_prediction(image, pred, metadata)[:, :, ::-1])
            logger.info("%s -> %s", path, out)
        logger.info("%d images in %.2fs", len(paths), time.perf_counter() - start)
        return

    writer = None
    for frame, pred in predictor.predict_stream(read_video_frames(args.video_input)):
        vis = draw_prediction(frame, pred, metadata)[:, :, ::-1]
        if writer is None:
            fps = cv2.VideoCapture(args.video_input).get(cv2.CAP_PROP_FPS) or 25.0
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            writer = cv2.VideoWriter(args.output, fourcc, fps, (vis.shape[1], vis.shape[0]))
        writer.write(vis)
    if writer is None:
        raise ValueError(f"video {args.video_input!r} has no frames")
    writer.release()
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
