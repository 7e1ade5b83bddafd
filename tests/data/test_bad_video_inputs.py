"""Bad inputs to the video (clip) mappers and the YouTube-VIS loader: a missing or unreadable frame
skips the clip in training (counted) and is an error in inference; masks or frames of the wrong
size are errors naming the file."""

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.utils.events import EventStorage
from PIL import Image
from video_samples import rle, write_video_json

from mask2former.data.bad_samples import MissingFileError, SkippedSampleCounter
from mask2former.data.datasets import load_ytvis_json
from mask2former.data.mappers import CocoClipDatasetMapper, YTVISDatasetMapper

CATEGORIES = [{"id": 1, "name": "thing"}]


def track(size=(8, 10), frames: int = 3) -> Dict[str, Any]:
    mask = np.zeros(size, np.uint8)
    mask[2:6, 2:7] = 1
    return {
        "id": 1,
        "video_id": 7,
        "category_id": 1,
        "iscrowd": 0,
        "segmentations": [rle(mask)] * frames,
        "bboxes": [[2, 2, 5, 4]] * frames,
        "areas": [20] * frames,
    }


def records(root: Path, length: int = 3) -> List[Dict[str, Any]]:
    json_file = write_video_json(root, [track(frames=length)], CATEGORIES, length=length)
    return load_ytvis_json(str(json_file), str(root))


def ytvis_mapper(is_train: bool) -> YTVISDatasetMapper:
    return YTVISDatasetMapper(
        is_train, augmentations=[], image_format="RGB", sampling_frame_num=3, num_classes=1
    )


def skip_totals(out: Dict[str, Any]) -> Dict[str, int]:
    with EventStorage():
        counter = SkippedSampleCounter([[out]])
        list(counter)
    return dict(counter.totals)


def test_missing_frame_skips_the_clip_in_training(tmp_path: Path, caplog) -> None:
    (record,) = records(tmp_path, length=1)  # training clips draw frames at random: one frame
    missing = record["file_names"][0]
    Path(missing).unlink()
    assert ytvis_mapper(is_train=True)(record) is None
    with pytest.raises(MissingFileError, match=f"File not found: '{missing}'"):
        ytvis_mapper(is_train=False)(record)

    (good,) = records(tmp_path / "good")
    out = ytvis_mapper(is_train=True)(good)
    assert len(out["image"]) == 3
    assert skip_totals(out) == {"skipped_missing_file": 1}
    assert missing in caplog.text


def test_unreadable_frame_skips_the_clip_in_training(tmp_path: Path) -> None:
    (record,) = records(tmp_path, length=1)
    Path(record["file_names"][0]).write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert ytvis_mapper(is_train=True)(record) is None
    (good,) = records(tmp_path / "good")
    assert skip_totals(ytvis_mapper(is_train=True)(good)) == {"skipped_unreadable_file": 1}


def test_frame_of_another_size_is_an_error_naming_it(tmp_path: Path) -> None:
    (record,) = records(tmp_path, length=1)
    frame = record["file_names"][0]
    Image.fromarray(np.zeros((9, 10, 3), np.uint8)).save(frame, format="JPEG")
    for is_train in (True, False):
        with pytest.raises(SizeMismatchError, match=rf"'{frame}' is 10x9 \(WxH\).*says 10x8"):
            ytvis_mapper(is_train)(record)


def test_mask_of_another_size_in_the_json_is_an_error(tmp_path: Path) -> None:
    json_file = write_video_json(tmp_path, [track(size=(9, 10))], CATEGORIES)
    with pytest.raises(ValueError, match=r"video.json' has a mask of size \[9, 10\].*\[8, 10\]"):
        load_ytvis_json(str(json_file), str(tmp_path))


def test_crowd_only_coco_image_is_skipped_as_a_clip(tmp_path: Path) -> None:
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(image)
    crowd = {
        "segmentation": [[1, 1, 8, 1, 8, 6, 1, 6]],
        "bbox": [1, 1, 7, 5],
        "bbox_mode": 1,
        "category_id": 0,
        "iscrowd": 1,
    }
    mapper = CocoClipDatasetMapper(
        True, augmentations=[], image_format="RGB", sampling_frame_num=2, num_classes=1
    )
    record = {"file_name": str(image), "height": 8, "width": 10, "annotations": [crowd]}
    assert mapper(record) is None
    out = mapper(dict(record, annotations=[dict(crowd, iscrowd=0)]))
    assert len(out["instances"]) == 2 and out["instances"][0].gt_masks.any()
    assert skip_totals(out) == {"skipped_crowd_only": 1}
