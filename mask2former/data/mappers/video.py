# Copyright (c) the mask2former authors.
"""Clip mappers of Video Mask2Former (Cheng et al. 2021; adapted in the official code from IFC,
Hwang et al. NeurIPS 2021): a YouTube-VIS video or a COCO image -> a clip of frames with instance
targets tracked across them.

Output of both mappers (training)::

    image:       T tensors [3, H_t, W_t] uint8 (one augmentation per clip, see
                 :mod:`.video_augmentations`)
    instances:   T Instances, each with the same N tracks in the same order:
                 gt_ids [N] int64 (track id, -1 where the track is absent from the frame),
                 gt_classes [N] int64 (the track's contiguous class, in every frame),
                 gt_masks [N, H_t, W_t] bool (empty where absent), gt_boxes Boxes [N, 4] (XYXY)
    file_names:  T paths; frame_indices: T frame indices into the video
    height, width, length, video_id (when in the record): the original video

As in the official ``YTVISDatasetMapper``, a track is absent from a frame when the frame has no
annotation of it or when augmentation leaves its mask empty; unlike it, an absent track keeps its
class instead of the no-object id ``num_classes``, so every frame gives the track's class.
In inference mode the YouTube-VIS mapper returns every frame of the video, resized for the model,
with ``height``/``width`` the original size and no annotations.

Bad data (see :mod:`mask2former.data.bad_samples`): in training, a clip with a missing or
unreadable frame (or a COCO image whose objects are all crowd) is skipped and counted; in
inference it is an error naming the file. A frame whose size is not the video's is an error.
"""

import copy
import logging
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Boxes, Instances
from fvcore.transforms.transform import Transform

from ...utils.boxes import masks_to_boxes
from ..bad_samples import map_or_skip
from ..image_io import check_image_size, read_image
from .registry import DATASET_MAPPER_REGISTRY, build_dataset_mapper
from .targets import annotation_masks, image_to_tensor, training_objects
from .video_augmentations import clip_augmentations_from_config, start_clip

__all__ = [
    "CLIP_MAPPER_NAMES",
    "CocoClipDatasetMapper",
    "YTVISDatasetMapper",
    "build_video_dataset_mapper",
    "clip_frame_instances",
    "sample_clip_frames",
]

logger = logging.getLogger(__name__)

# Registered names of the clip mappers (values of INPUT.DATASET_MAPPER_NAME).
CLIP_MAPPER_NAMES = ("ytvis_clip", "coco_clip")


def sample_clip_frames(
    length: int, num_frames: int, frame_range: int, shuffle: bool = False
) -> List[int]:
    """Frame indices of a training clip, as officially: a random reference frame plus
    ``num_frames - 1`` frames drawn (with replacement) among the others within ``frame_range``
    of it; sorted, or shuffled with ``shuffle``. A one-frame video repeats its frame."""
    reference = random.randrange(length)
    start, end = max(0, reference - frame_range), min(length, reference + frame_range + 1)
    others = [i for i in range(start, end) if i != reference]
    if not others:
        others = [reference]
    chosen = np.random.choice(others, num_frames - 1).tolist() + [reference]
    chosen = sorted(int(i) for i in chosen)
    if shuffle:
        random.shuffle(chosen)
    return chosen


def clip_frame_instances(
    annotations: Sequence[Dict[str, Any]],
    track_ids: Sequence[int],
    track_classes: Sequence[int],
    transforms: Union[T.TransformList, Sequence[Transform]],
    image_shape: Tuple[int, int],
    num_classes: Optional[int],
    file_name: str,
) -> Instances:
    """Targets of one frame with one row per track of the clip (see the module docstring).

    Args:
        annotations: the frame's detectron2 objects (``id`` = track id, ``segmentation``,
            ``bbox``, ``bbox_mode``, contiguous ``category_id``), before augmentation; crowd
            objects are ignored. Not modified.
        track_ids, track_classes: the clip's N tracks and their classes.
        transforms: the frame's augmentation; image_shape: (H, W) after it.
    """
    present = {a["id"]: a for a in annotations if not a.get("iscrowd", 0)}
    kept = [i for i in track_ids if i in present]
    transformed = [
        utils.transform_instance_annotations(copy.deepcopy(present[i]), transforms, image_shape)
        for i in kept
    ]
    _, masks = annotation_masks(transformed, image_shape, num_classes, file_name)
    mask_of = dict(zip(kept, masks))
    gt_masks = torch.zeros((len(track_ids), *image_shape), dtype=torch.bool)  # [N, H, W]
    for row, track in enumerate(track_ids):
        if track in mask_of:
            gt_masks[row] = mask_of[track]
    visible = gt_masks.flatten(1).any(dim=1)  # [N]
    instances = Instances(image_shape)
    instances.gt_ids = torch.where(visible, torch.as_tensor(track_ids, dtype=torch.int64), -1)
    instances.gt_classes = torch.as_tensor(track_classes, dtype=torch.int64).reshape(-1)
    instances.gt_masks = gt_masks
    instances.gt_boxes = Boxes(masks_to_boxes(gt_masks))
    return instances


def _num_classes(cfg: CfgNode) -> Optional[int]:
    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else None
    classes = meta.get("thing_classes") if meta is not None else None
    return len(classes) if classes else None


class _ClipMapper:
    """Shared constructor, configuration and frame loop of the clip mappers."""

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[Union[T.Augmentation, Transform]],
        image_format: str,
        sampling_frame_num: int = 2,
        sampling_frame_range: int = 20,
        sampling_frame_shuffle: bool = False,
        num_classes: Optional[int] = None,
    ) -> None:
        """
        Args:
            is_train: training clips with targets, or inference inputs.
            augmentations: per-frame augmentations; :class:`ClipAugmentation` ones draw once per
                clip (see :func:`clip_augmentations_from_config`).
            image_format: INPUT.FORMAT, as in detectron2's ``read_image``.
            sampling_frame_num, sampling_frame_range, sampling_frame_shuffle: clip sampling
                (INPUT.SAMPLING_FRAME_*): T frames per training clip.
            num_classes: ``category_id`` must lie in ``[0, num_classes)``; None skips the check.
        """
        if sampling_frame_num < 1:
            raise ValueError(f"sampling_frame_num must be >= 1, got {sampling_frame_num}")
        self.is_train = is_train
        self.augmentations = augmentations
        self.image_format = image_format
        self.sampling_frame_num = sampling_frame_num
        self.sampling_frame_range = sampling_frame_range
        self.sampling_frame_shuffle = sampling_frame_shuffle
        self.num_classes = num_classes
        mode = "training" if is_train else "inference"
        logger.info(f"[{type(self).__name__}] augmentations in {mode}: {augmentations}")

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        return {
            "is_train": is_train,
            "augmentations": clip_augmentations_from_config(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "sampling_frame_num": cfg.INPUT.SAMPLING_FRAME_NUM,
            "sampling_frame_range": cfg.INPUT.SAMPLING_FRAME_RANGE,
            "sampling_frame_shuffle": cfg.INPUT.SAMPLING_FRAME_SHUFFLE,
            "num_classes": _num_classes(cfg),
        }

    def __call__(self, dataset_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The mapped clip; in training, None for a skipped bad sample."""
        if not self.is_train:
            return self._map(dataset_dict)
        return map_or_skip(self._map, dataset_dict)

    def _map(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        raise NotImplementedError

    def _map_clip(
        self,
        record: Dict[str, Any],
        file_names: Sequence[str],
        frame_annotations: Optional[Sequence[Sequence[Dict[str, Any]]]],
        track_ids: Sequence[int],
        track_classes: Sequence[int],
    ) -> Dict[str, Any]:
        """Read, augment and (with ``frame_annotations``) build targets for each frame."""
        start_clip(self.augmentations)
        record["image"], record["file_names"] = [], list(file_names)
        if frame_annotations is not None:
            record["instances"] = []
        for t, file_name in enumerate(file_names):
            image = read_image(file_name, format=self.image_format)
            check_image_size(record, image, file_name)
            aug_input = T.AugInput(image)
            transforms = T.AugmentationList(self.augmentations)(aug_input)
            image = aug_input.image
            record["image"].append(image_to_tensor(image))  # [3, H, W] uint8
            if frame_annotations is not None:
                record["instances"].append(
                    clip_frame_instances(
                        frame_annotations[t],
                        track_ids,
                        track_classes,
                        transforms,
                        image.shape[:2],
                        self.num_classes,
                        file_name,
                    )
                )
        return record


@DATASET_MAPPER_REGISTRY.register_as("ytvis_clip")
class YTVISDatasetMapper(_ClipMapper):
    """YouTube-VIS record (see :func:`mask2former.data.datasets.load_ytvis_json`) -> a training
    clip of ``sampling_frame_num`` frames, or every frame of the video for inference."""

    def _map(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        record = {k: v for k, v in dataset_dict.items() if k not in ("annotations", "file_names")}
        length = dataset_dict["length"]
        if not self.is_train:
            record["frame_indices"] = list(range(length))
            return self._map_clip(record, dataset_dict["file_names"][:length], None, (), ())
        if "annotations" not in dataset_dict:
            raise ValueError(f"YTVISDatasetMapper needs 'annotations' for video {record}")
        frames = sample_clip_frames(
            length, self.sampling_frame_num, self.sampling_frame_range, self.sampling_frame_shuffle
        )
        annotations = [dataset_dict["annotations"][t] for t in frames]
        classes: Dict[int, int] = {}
        for frame in annotations:
            for obj in frame:
                if not obj.get("iscrowd", 0):
                    classes.setdefault(obj["id"], int(obj["category_id"]))
        track_ids = sorted(classes)
        record["frame_indices"] = frames
        file_names = [dataset_dict["file_names"][t] for t in frames]
        return self._map_clip(
            record, file_names, annotations, track_ids, [classes[i] for i in track_ids]
        )


@DATASET_MAPPER_REGISTRY.register_as("coco_clip")
class CocoClipDatasetMapper(_ClipMapper):
    """COCO instance record (``file_name``, ``annotations``) -> a pseudo-clip: the image repeated
    ``sampling_frame_num`` times, each copy augmented on its own draw of the per-frame
    augmentations (e.g. the random crop), with annotation ``i`` as track ``i``."""

    def _map(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        record = {k: v for k, v in dataset_dict.items() if k not in ("annotations", "file_name")}
        file_names = [dataset_dict["file_name"]] * self.sampling_frame_num
        record["frame_indices"] = [0] * self.sampling_frame_num
        if not self.is_train:
            return self._map_clip(record, file_names, None, (), ())
        if "annotations" not in dataset_dict:
            raise ValueError(f"CocoClipDatasetMapper needs 'annotations' for {file_names[0]!r}")
        size = (dataset_dict["height"], dataset_dict["width"]) if "height" in record else None
        usable = training_objects(dataset_dict["annotations"], size, file_names[0])
        objects = [dict(obj, id=i) for i, obj in enumerate(usable)]
        track_ids = list(range(len(objects)))
        classes = [int(obj["category_id"]) for obj in objects]
        annotations = [objects] * self.sampling_frame_num
        return self._map_clip(record, file_names, annotations, track_ids, classes)


def build_video_dataset_mapper(
    cfg: CfgNode, dataset_name: str, is_train: bool = True
) -> _ClipMapper:
    """The clip mapper for ``dataset_name``: INPUT.DATASET_MAPPER_NAME when it names one
    (``"ytvis_clip"``, ``"coco_clip"``); otherwise, as the official ``train_net_video``, the
    COCO pseudo-clip mapper to train on a COCO-format image dataset (``evaluator_type`` "coco")
    and the YouTube-VIS mapper for everything else (the official video YAML files leave
    INPUT.DATASET_MAPPER_NAME at its image default)."""
    if cfg.INPUT.DATASET_MAPPER_NAME in CLIP_MAPPER_NAMES:
        return build_dataset_mapper(cfg, is_train)
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type")
    use_coco = is_train and evaluator_type == "coco"
    return (CocoClipDatasetMapper if use_coco else YTVISDatasetMapper)(cfg, is_train)
