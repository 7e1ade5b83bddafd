# Batched inference and visualisation for the demo. Detectron2's DefaultPredictor runs one image
# at a time; BatchPredictor runs the network once per batch of images.
import glob
import logging
import os
from collections.abc import Iterable, Iterator

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.utils.visualizer import ColorMode, Visualizer

logger = logging.getLogger(__name__)


class BatchPredictor:
    """Loads ``cfg.MODEL.WEIGHTS`` and predicts on lists of BGR uint8 images (H, W, 3), as read by
    OpenCV.

    Each image is resized with ``ResizeShortestEdge(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)``;
    results are at the original size: dicts with ``sem_seg`` / ``panoptic_seg`` / ``instances`` as
    the model's TEST.*_ON select.
    """

    def __init__(self, cfg: CfgNode, batch_size: int = 4):
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg).eval()
        DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )
        if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {cfg.INPUT.FORMAT!r}")
        self.input_format = cfg.INPUT.FORMAT
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def _to_input(self, image_bgr: np.ndarray) -> dict:
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) BGR image, got shape {image_bgr.shape}")
        image = image_bgr[:, :, ::-1] if self.input_format == "RGB" else image_bgr
        height, width = image.shape[:2]
        image = self.aug.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))  # [3, H', W']
        return {"image": tensor, "height": height, "width": width}

    @torch.no_grad()
    def __call__(self, images_bgr: list[np.ndarray]) -> list[dict]:
        return self.model([self._to_input(im) for im in images_bgr])

    def predict_stream(self, images_bgr: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, dict]]:
        """Yields ``(image, prediction)`` in input order, one model run per batch."""
        batch: list[np.ndarray] = []
        for image in images_bgr:
            batch.append(image)
            if len(batch) == self.batch_size:
                yield from zip(batch, self(batch))
                batch = []
        if batch:
            yield from zip(batch, self(batch))


def draw_prediction(image_bgr: np.ndarray, prediction: dict, metadata) -> np.ndarray:
    """Draws the richest result present (panoptic > instances > semantic); returns RGB uint8."""
    vis = Visualizer(image_bgr[:, :, ::-1], metadata, instance_mode=ColorMode.IMAGE)
    if "panoptic_seg" in prediction:
        panoptic_seg, segments_info = prediction["panoptic_seg"]
        out = vis.draw_panoptic_seg_predictions(panoptic_seg.cpu(), segments_info)
    elif "instances" in prediction:
        out = vis.draw_instance_predictions(prediction["instances"].to("cpu"))
    elif "sem_seg" in prediction:
        out = vis.draw_sem_seg(prediction["sem_seg"].argmax(dim=0).cpu())
    else:
        raise KeyError(f"prediction has no panoptic_seg/instances/sem_seg: {sorted(prediction)}")
    return out.get_image()


def metadata_for(cfg: CfgNode):
    names = list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TRAIN)
    return MetadataCatalog.get(names[0] if names else "__unused")


def read_video_frames(path: str) -> Iterator[np.ndarray]:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {path!r}")
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield frame
    finally:
        capture.release()


def expand_patterns(patterns: Iterable[str]) -> list[str]:
    """The files of paths or glob patterns, each pattern's matches sorted, in the given order."""
    paths: list[str] = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matched:
            raise FileNotFoundError(f"--input {pattern!r} matches no file")
        paths.extend(matched)
    return paths


def read_images(paths: Iterable[str]) -> list[np.ndarray]:
    """BGR uint8 images [H, W, 3] of ``paths``; an unreadable file is an error naming it."""
    images = []
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read image {path!r}")
        images.append(image)
    return images
