"""Datasets of your own: ``my_shapes_panoptic_{train,val}`` (COCO-panoptic format: PQ, mask AP and
mIoU) and ``my_shapes_sem_seg_{train,val}`` (semantic labels: mIoU), read from
``$DETECTRON2_DATASETS/my_shapes/<split>/``::

    images/<stem>.jpg
    panoptic/<stem>.png, panoptic.json   COCO panoptic: RGB-id PNGs and their segments_info
    panoptic_semseg/<stem>.png           semantic labels: contiguous class ids, 255 = ignore
    instances.json                       COCO instances of the things (for mask AP)

Registering reads no file: the paths are resolved against ``$DETECTRON2_DATASETS`` when a dataset
is loaded. Training on it: custom_dataset.yaml.
"""

from mask2former.data.datasets import (
    panoptic_metadata,
    register_panoptic_dataset,
    register_semantic_dataset,
)

# The categories of panoptic.json, in the order of the contiguous ids: (name, is a thing, colour).
CLASSES = [
    ("circle", True, (220, 40, 40)),
    ("square", True, (150, 60, 200)),
    ("triangle", True, (240, 200, 30)),
    ("sky", False, (120, 170, 235)),
    ("grass", False, (60, 150, 60)),
    ("water", False, (30, 110, 130)),
]
CATEGORIES = [  # COCO-panoptic categories: dataset ids 1..6
    {"id": i + 1, "name": name, "isthing": int(isthing), "color": list(color)}
    for i, (name, isthing, color) in enumerate(CLASSES)
]


def register_my_shapes(root: str = "my_shapes") -> None:
    """Register both splits of both tasks; ``root`` is relative to ``$DETECTRON2_DATASETS``."""
    for split in ("train", "val"):
        base = f"{root}/{split}"
        register_panoptic_dataset(
            f"my_shapes_panoptic_{split}",
            panoptic_metadata(CATEGORIES),
            image_root=f"{base}/images",
            panoptic_root=f"{base}/panoptic",
            panoptic_json=f"{base}/panoptic.json",
            sem_seg_root=f"{base}/panoptic_semseg",  # optional: adds mIoU to PQ
            instances_json=f"{base}/instances.json",  # optional: adds mask AP
            evaluator_type="coco_panoptic_seg",  # PQ (+ mIoU, AP) with detectron2's evaluators
            root_relative=True,
        )
        register_semantic_dataset(
            f"my_shapes_sem_seg_{split}",
            image_root=f"{base}/images",
            sem_seg_root=f"{base}/panoptic_semseg",
            classes=[name for name, _, _ in CLASSES],
            colors=[color for _, _, color in CLASSES],
            root_relative=True,  # evaluator_type "sem_seg" (mIoU) by default
        )


register_my_shapes()
