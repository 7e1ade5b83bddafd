# Batched inference and visualisation for the demo. Detectron2's DefaultPredictor runs one image
# at a time; BatchPredictor runs the network once per batch of images.
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.utils.visualizer import ColorMode, Visualizer

logger = logging.getLogger("mask2former.demo.predictor")

Tag = TypeVar("Tag")
CHANNEL_ORDERS = ("RGB", "BGR")


def to_channel_order(image: np.ndarray, image_format: str, wanted: str) -> np.ndarray:
    """``image`` (H, W, 3) in ``image_format`` ("RGB" or "BGR") as ``wanted`` (a view)."""
    for name, value in (("image_format", image_format), ("wanted format", wanted)):
        if value not in CHANNEL_ORDERS:
            raise ValueError(f"{name} must be one of {CHANNEL_ORDERS}, got {value!r}")
    return image if image_format == wanted else image[:, :, ::-1]


class BatchPredictor:
    """Loads ``cfg.MODEL.WEIGHTS`` and predicts on lists of uint8 images (H, W, 3), BGR as read by
    OpenCV unless ``image_format="RGB"`` is given.

    Each image is resized with ``ResizeShortestEdge(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)``;
    results are at the original size: dicts with ``sem_seg`` / ``panoptic_seg`` / ``instances`` as
    the model's TEST.*_ON select. ``metadata`` is the dataset metadata of the config (class names
    and colours for drawing, category ids for saving).
    """

    def __init__(self, cfg: CfgNode, batch_size: int = 4):
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg).eval()
        DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )
        if cfg.INPUT.FORMAT not in CHANNEL_ORDERS:
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {cfg.INPUT.FORMAT!r}")
        self.input_format = cfg.INPUT.FORMAT
        self.metadata = metadata_for(cfg)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def _to_input(self, image: np.ndarray, image_format: str) -> dict:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
        image = to_channel_order(image, image_format, self.input_format)
        height, width = image.shape[:2]
        image = self.aug.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))  # [3, H', W']
        return {"image": tensor, "height": height, "width": width}

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray], image_format: str = "BGR") -> list[dict]:
        return self.model([self._to_input(im, image_format) for im in images])

    def predict_stream(
        self, images: Iterable[np.ndarray], image_format: str = "BGR"
    ) -> Iterator[tuple[np.ndarray, dict]]:
        """Yields ``(image, prediction)`` in input order, one model run per batch."""
        tagged = ((None, image) for image in images)
        for _, image, prediction in self.predict_tagged(tagged, image_format):
            yield image, prediction

    def predict_tagged(
        self,
        items: Iterable[tuple[Tag, np.ndarray]],
        image_format: str = "BGR",
        on_error: Callable[[Tag, Exception], None] | None = None,
    ) -> Iterator[tuple[Tag, np.ndarray, dict]]:
        """Yields ``(tag, image, prediction)`` for ``(tag, image)`` items, in order, one model run
        per batch; ``items`` is consumed lazily (at most ``batch_size`` images are held).

        Without ``on_error`` an error of the model propagates. With it, a batch that fails is
        run again image by image, and each image that still fails is passed to
        ``on_error(tag, error)`` and skipped, so one bad input does not lose the others.
        """
        batch: list[tuple[Tag, np.ndarray]] = []
        for item in items:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield from self._predict_batch(batch, image_format, on_error)
                batch = []
        if batch:
            yield from self._predict_batch(batch, image_format, on_error)

    def _predict_batch(
        self,
        batch: list[tuple[Tag, np.ndarray]],
        image_format: str,
        on_error: Callable[[Tag, Exception], None] | None,
    ) -> Iterator[tuple[Tag, np.ndarray, dict]]:
        images = [image for _, image in batch]
        if on_error is None:
            yield from ((t, im, p) for (t, im), p in zip(batch, self(images, image_format)))
            return
        try:
            predictions = self(images, image_format)
        except Exception as error:  # reported per image below
            if len(batch) > 1:
                logger.warning("a batch of %d failed (%s); retrying one by one", len(batch), error)
            predictions = []
            for tag, image in batch:
                try:
                    predictions.append(self([image], image_format)[0])
                except Exception as single_error:  # handed to on_error
                    on_error(tag, single_error)
                    predictions.append(None)
        for (tag, image), prediction in zip(batch, predictions):
            if prediction is not None:
                yield tag, image, prediction


def filter_instances(instances: Any, confidence_threshold: float) -> Any:
    """The instances whose ``scores`` exceed ``confidence_threshold``."""
    return instances[instances.scores > confidence_threshold]


def draw_prediction(
    image: np.ndarray,
    prediction: dict,
    metadata,
    *,
    image_format: str = "BGR",
    confidence_threshold: float = 0.0,
) -> np.ndarray:
    """Draws the richest result present (panoptic > instances > semantic); returns RGB uint8.

    ``image`` is (H, W, 3) uint8 in ``image_format``. ``confidence_threshold`` hides instances
    whose score is not above it. Panoptic segments are the model's (its
    ``MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD`` decides which queries become segments) and
    semantic maps are drawn in full (every pixel gets its best class), as the official demo.
    """
    rgb = to_channel_order(image, image_format, "RGB")
    vis = Visualizer(rgb, metadata, instance_mode=ColorMode.IMAGE)
    if "panoptic_seg" in prediction:
        panoptic_seg, segments_info = prediction["panoptic_seg"]
        out = vis.draw_panoptic_seg_predictions(panoptic_seg.cpu(), segments_info)
    elif "instances" in prediction:
        instances = filter_instances(prediction["instances"].to("cpu"), confidence_threshold)
        out = vis.draw_instance_predictions(instances)
    elif "sem_seg" in prediction:
        out = vis.draw_sem_seg(prediction["sem_seg"].argmax(dim=0).cpu())
    else:
        raise KeyError(f"prediction has no panoptic_seg/instances/sem_seg: {sorted(prediction)}")
    return out.get_image()


def metadata_for(cfg: CfgNode):
    names = list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TRAIN)
    return MetadataCatalog.get(names[0] if names else "__unused")


def read_video_frames(source: "str | cv2.VideoCapture") -> Iterator[np.ndarray]:
    """Yields the BGR frames of a video file (opened and released here) or of an opened
    ``cv2.VideoCapture`` (the caller releases it)."""
    capture = cv2.VideoCapture(source) if isinstance(source, str) else source
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {source!r}")
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield frame
    finally:
        if capture is not source:
            capture.release()
