"""Model outputs in COCO formats with the dataset's category ids (what ``demo.py --save-json``
writes)."""

import numpy as np
import pytest
import torch
from detectron2.data import Metadata, MetadataCatalog
from detectron2.structures import Boxes, Instances
from pycocotools import mask as mask_util

from mask2former.data.panoptic_format import rgb_to_id
from mask2former.utils.result_formats import (
    coco_categories,
    instances_to_coco_results,
    panoptic_to_coco,
    semantic_classes,
    semantic_label_map,
)

COCO_PANOPTIC = "coco_2017_val_panoptic_with_sem_seg"


def test_panoptic_segments_get_dataset_ids_areas_and_boxes() -> None:
    metadata = MetadataCatalog.get(COCO_PANOPTIC)
    person, banner = 0, metadata.stuff_classes.index("banner")  # contiguous ids
    panoptic_seg = torch.zeros(6, 8, dtype=torch.int32)
    panoptic_seg[1:3, 2:5] = 1
    panoptic_seg[4:, :] = 7
    segments_info = [
        {"id": 1, "isthing": True, "category_id": person},
        {"id": 7, "isthing": False, "category_id": banner},
        {"id": 9, "isthing": True, "category_id": person},  # no pixel left: dropped
    ]
    rgb, info = panoptic_to_coco(panoptic_seg, segments_info, metadata)
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 8, 3)
    np.testing.assert_array_equal(rgb_to_id(rgb), panoptic_seg.numpy())
    common = {"iscrowd": 0}
    assert info == [
        {"id": 1, "category_id": 1, "area": 6, "bbox": [2, 1, 3, 2], "isthing": True, **common},
        {"id": 7, "category_id": 92, "area": 16, "bbox": [0, 4, 8, 2], "isthing": False, **common},
    ]
    categories = {c["id"]: c for c in coco_categories(metadata)}
    assert categories[1] == {"id": 1, "name": "person", "isthing": 1}
    assert categories[92] == {"id": 92, "name": "banner", "isthing": 0}

    with pytest.raises(ValueError, match="thing class 200"):
        panoptic_to_coco(panoptic_seg, [{"id": 1, "isthing": True, "category_id": 200}], metadata)


def test_instances_get_dataset_ids_and_rle_masks() -> None:
    metadata = MetadataCatalog.get(COCO_PANOPTIC)
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 4:, :] = True
    instances = Instances((6, 8))
    instances.pred_masks = masks
    instances.pred_boxes = Boxes(torch.tensor([[2.0, 1.0, 5.0, 3.0], [0.0, 4.0, 8.0, 6.0]]))
    instances.scores = torch.tensor([0.9, 0.2])
    car = metadata.thing_dataset_id_to_contiguous_id[3]
    instances.pred_classes = torch.tensor([0, car])
    results = instances_to_coco_results(instances, 139, metadata, file_name="139.jpg")
    assert [r["category_id"] for r in results] == [1, 3]
    assert [r["bbox"] for r in results] == [[2.0, 1.0, 3.0, 2.0], [0.0, 4.0, 8.0, 2.0]]
    assert results[0]["score"] == pytest.approx(0.9)
    assert {r["image_id"] for r in results} == {139}
    assert {r["file_name"] for r in results} == {"139.jpg"}
    np.testing.assert_array_equal(mask_util.decode(results[1]["segmentation"]), masks[1].numpy())

    # No id map (e.g. an unregistered dataset): the contiguous ids are kept.
    kept = instances_to_coco_results(instances, 139, Metadata(name="unmapped"))
    assert [r["category_id"] for r in kept] == [0, car]


def test_semantic_label_map_and_classes() -> None:
    scores = torch.zeros(3, 2, 2)
    scores[2, 0, 0] = 1.0
    labels = semantic_label_map(scores)
    assert labels.dtype == np.uint8 and labels.tolist() == [[2, 0], [0, 0]]
    many = torch.zeros(300, 1, 2)
    many[299, 0, 1] = 1.0
    wide = semantic_label_map(many)
    assert wide.dtype == np.uint16 and wide.tolist() == [[0, 299]]

    table = semantic_classes(MetadataCatalog.get(COCO_PANOPTIC), 133)
    assert table[0] == {"index": 0, "name": "person", "dataset_id": 1}
    assert table[-1]["dataset_id"] == 200
    assert semantic_classes(Metadata(name="unnamed"), 2)[1] == {
        "index": 1,
        "name": "class 1",
        "dataset_id": None,
    }
