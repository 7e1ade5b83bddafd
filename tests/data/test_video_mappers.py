"""The clip mappers: frame sampling, one augmentation per clip, tracks kept across frames, absent
instances marked, all frames at test time, COCO pseudo-clips, and the mapper registry."""

import random
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from PIL import Image
from video_samples import make_tiny_split

from mask2former import add_maskformer2_video_config
from mask2former.data.datasets import load_ytvis_json
from mask2former.data.mappers import (
    CocoClipDatasetMapper,
    YTVISDatasetMapper,
    build_dataset_mapper,
    build_video_dataset_mapper,
)
from mask2former.data.mappers.video import sample_clip_frames
from mask2former.data.mappers.video_augmentations import (
    ClipResizeShortestEdge,
    build_clip_augmentations,
    start_clip,
)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> List[Dict[str, Any]]:
    root = make_tiny_split(tmp_path_factory.mktemp("tiny_video"))
    return load_ytvis_json(str(root / "instances.json"), str(root / "JPEGImages"))


def _cfg(**input_keys: Any) -> CfgNode:
    cfg = get_cfg()
    add_maskformer2_video_config(cfg)
    cfg.merge_from_file(
        str(
            Path(__file__).resolve().parents[2]
            / "configs/youtubevis_2019/Base-YouTubeVIS-VideoInstanceSegmentation.yaml"
        )
    )
    cfg.DATASETS.TRAIN = ("m2f_synthetic_video_train",)
    cfg.INPUT.MIN_SIZE_TRAIN = (96,)  # the frames' own size: no resampling
    cfg.INPUT.MIN_SIZE_TEST = 48
    for key, value in input_keys.items():
        cfg.INPUT[key] = value
    return cfg


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)


def test_sample_clip_frames() -> None:
    _seed(0)
    for _ in range(200):
        frames = sample_clip_frames(30, 3, 5)
        assert len(frames) == 3 and frames == sorted(frames)
        # Some frame (the reference) has every other one within 5 frames of it.
        assert any(all(abs(f - r) <= 5 for f in frames) for r in frames)
        assert all(0 <= f < 30 for f in frames)
    assert sample_clip_frames(1, 2, 5) == [0, 0]
    shuffled = [sample_clip_frames(30, 4, 20, shuffle=True) for _ in range(50)]
    assert any(s != sorted(s) for s in shuffled)


def _gt_mask(record: Dict[str, Any], frame: int, track: int) -> np.ndarray:
    (obj,) = [o for o in record["annotations"][frame] if o["id"] == track]
    return mask_util.decode(obj["segmentation"]).astype(bool)


def test_training_clip_targets(records: List[Dict[str, Any]]) -> None:
    mapper = YTVISDatasetMapper(_cfg(SAMPLING_FRAME_NUM=3, RANDOM_FLIP="none"), is_train=True)
    _seed(1)
    saw_absent = False
    for record in records * 3:
        out = mapper(record)
        frames = out["frame_indices"]
        assert len(out["image"]) == len(out["instances"]) == len(out["file_names"]) == 3
        assert out["file_names"] == [record["file_names"][t] for t in frames]
        tracks = sorted({o["id"] for t in frames for o in record["annotations"][t]})
        classes = out["instances"][0].gt_classes
        for t, image, instances in zip(frames, out["image"], out["instances"]):
            assert image.dtype == torch.uint8 and image.shape == (3, 96, 128)
            assert torch.equal(instances.gt_classes, classes)  # a track's class in every frame
            assert instances.gt_masks.shape == (len(tracks), 96, 128)
            for row, track in enumerate(tracks):
                present = any(o["id"] == track for o in record["annotations"][t])
                mask = instances.gt_masks[row]
                if present:
                    assert instances.gt_ids[row] == track
                    assert np.array_equal(mask.numpy(), _gt_mask(record, t, track))
                else:  # absent from this frame: id -1, empty mask and box
                    assert instances.gt_ids[row] == -1 and not mask.any()
                    assert instances.gt_boxes.tensor[row].abs().sum() == 0
                    saw_absent = True
    assert saw_absent


def test_one_flip_and_one_size_per_clip(records: List[Dict[str, Any]]) -> None:
    cfg = _cfg(SAMPLING_FRAME_NUM=4, MIN_SIZE_TRAIN=(64, 96, 128))
    mapper = YTVISDatasetMapper(cfg, is_train=True)
    record = records[0]
    original = [utils.read_image(f, format="RGB") for f in record["file_names"]]
    flips, sizes = set(), set()
    _seed(2)
    for _ in range(24):
        out = mapper(record)
        shapes = {tuple(image.shape) for image in out["image"]}
        assert len(shapes) == 1  # one random size per clip (choice_by_clip)
        sizes |= shapes
        flipped = []
        for t, image in zip(out["frame_indices"], out["image"]):
            resized = T.ResizeTransform(96, 128, *image.shape[1:], Image.BILINEAR).apply_image(
                original[t]
            )
            as_hwc = image.permute(1, 2, 0).numpy()
            assert np.array_equal(as_hwc, resized) or np.array_equal(as_hwc, resized[:, ::-1])
            flipped.append(not np.array_equal(as_hwc, resized))
        assert len(set(flipped)) == 1  # one flip decision per clip (flip_by_clip)
        flips.add(flipped[0])
        for instances in out["instances"]:
            assert instances.gt_masks.shape[1:] == out["image"][0].shape[1:]
    assert flips == {True, False} and len(sizes) > 1


def test_per_frame_sampling_styles_draw_per_frame() -> None:
    _seed(3)
    image = np.zeros((96, 128, 3), dtype=np.uint8)
    per_frame = ClipResizeShortestEdge((40, 60, 80, 100), 1000, "choice")
    per_clip = ClipResizeShortestEdge((40, 60, 80, 100), 1000, "choice_by_clip")
    start_clip([per_frame, per_clip])
    assert len({per_clip.get_transform(image).new_h for _ in range(20)}) == 1
    assert len({per_frame.get_transform(image).new_h for _ in range(20)}) > 1
    assert (
        len({(start_clip([per_clip]), per_clip.get_transform(image).new_h)[1] for _ in range(20)})
        > 1
    )


def test_augmentation_options() -> None:
    augs = build_clip_augmentations(
        min_size=(360,),
        max_size=640,
        crop=("absolute_range", (60, 80)),
        extra=["brightness", "rotation"],
    )
    assert [type(a).__name__ for a in augs] == [
        "RandomCrop",
        "ClipResizeShortestEdge",
        "ClipRandomFlip",
        "RandomBrightness",
        "RandomRotation",
    ]
    with pytest.raises(ValueError, match="blur"):
        build_clip_augmentations(min_size=(360,), max_size=640, extra=["blur"])
    with pytest.raises(ValueError, match="RANDOM_FLIP"):
        build_clip_augmentations(min_size=(360,), max_size=640, random_flip="diagonal")


def test_inference_gives_every_frame(records: List[Dict[str, Any]]) -> None:
    mapper = YTVISDatasetMapper(_cfg(), is_train=False)
    for record in records:
        out = mapper(record)
        assert out["frame_indices"] == list(range(record["length"]))
        assert out["file_names"] == record["file_names"]
        assert [tuple(i.shape) for i in out["image"]] == [(3, 48, 64)] * record["length"]
        assert (out["height"], out["width"], out["video_id"]) == (96, 128, record["video_id"])
        assert "instances" not in out and "annotations" not in out
    assert "annotations" in records[0]  # the dataset's records are not modified


def _coco_record(root: Path) -> Dict[str, Any]:
    image = np.full((80, 120, 3), 90, dtype=np.uint8)
    Image.fromarray(image).save(root / "coco.jpg")
    square = [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]]
    corner = [[100.0, 60.0, 119.0, 60.0, 119.0, 79.0, 100.0, 79.0]]
    objects = [
        {"category_id": 2, "segmentation": square, "bbox": [10, 10, 30, 30], "iscrowd": 0},
        {"category_id": 0, "segmentation": corner, "bbox": [100, 60, 19, 19], "iscrowd": 0},
        {"category_id": 1, "segmentation": square, "bbox": [10, 10, 30, 30], "iscrowd": 1},
    ]
    for obj in objects:
        obj["bbox_mode"] = BoxMode.XYWH_ABS
    return {"file_name": str(root / "coco.jpg"), "height": 80, "width": 120, "annotations": objects}


def test_coco_pseudo_clips(tmp_path: Path) -> None:
    record = _coco_record(tmp_path)
    cfg = _cfg(SAMPLING_FRAME_NUM=5, MIN_SIZE_TRAIN=(80,), RANDOM_FLIP="none")
    cfg.INPUT.CROP.ENABLED, cfg.INPUT.CROP.SIZE = True, (50, 60)
    mapper = CocoClipDatasetMapper(cfg, is_train=True)
    _seed(4)
    saw_cropped_out, crops = False, set()
    for _ in range(10):
        out = mapper(record)
        assert out["file_names"] == [record["file_name"]] * 5
        for instances in out["instances"]:
            assert instances.gt_classes.tolist() == [2, 0]  # the crowd object is not a track
            assert set(instances.gt_ids.tolist()) <= {0, 1, -1}
            assert instances.gt_ids.tolist()[0] in (0, -1)
            saw_cropped_out |= bool((instances.gt_ids == -1).any())
            crops.add(tuple(instances.gt_masks.shape))
    assert saw_cropped_out and len(crops) > 1  # the crop is drawn per pseudo-frame


def test_mapper_registry_and_video_default(tmp_path: Path) -> None:
    cfg = _cfg()
    assert cfg.INPUT.DATASET_MAPPER_NAME == "mask_former_semantic"  # as the official video YAMLs
    assert isinstance(
        build_video_dataset_mapper(cfg, "m2f_synthetic_video_train"), YTVISDatasetMapper
    )
    assert isinstance(build_video_dataset_mapper(cfg, "coco_2017_train"), CocoClipDatasetMapper)
    assert isinstance(
        build_video_dataset_mapper(cfg, "coco_2017_val", is_train=False), YTVISDatasetMapper
    )
    for name, cls in (("ytvis_clip", YTVISDatasetMapper), ("coco_clip", CocoClipDatasetMapper)):
        cfg.INPUT.DATASET_MAPPER_NAME = name
        assert isinstance(build_dataset_mapper(cfg, is_train=True), cls)
        assert isinstance(build_video_dataset_mapper(cfg, "ytvis_2019_train"), cls)
