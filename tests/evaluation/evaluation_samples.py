"""Sample datasets of the evaluation tests, registered the standard detectron2 way."""

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any, Dict

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_sem_seg
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
ADE_DATASET = "m2f_test_ade20k_sem_seg_sample"
ADE_NUM_CLASSES = 150
IGNORE_LABEL = 255


def prepare_ade20k_labels(raw: np.ndarray) -> np.ndarray:
    """ADEChallengeData2016 label (0 = other, 1..150) -> detectron2 label (0..149, 255)."""
    return np.where(raw == 0, IGNORE_LABEL, raw.astype(np.int64) - 1).astype(np.uint8)


def register_ade20k_sample(root: Path) -> str:
    """Prepare the 3 ADE20K sample annotations under ``root`` and register them like
    detectron2's builtin ``ade20k_sem_seg_val`` (``load_sem_seg``, evaluator_type "sem_seg")."""
    if ADE_DATASET in DatasetCatalog.list():
        return ADE_DATASET
    (root / "images").mkdir(parents=True)
    (root / "annotations_detectron2").mkdir()
    for png in sorted((SAMPLES / "ade20k" / "annotations").glob("*.png")):
        labels = prepare_ade20k_labels(np.asarray(Image.open(png)))
        Image.fromarray(labels).save(root / "annotations_detectron2" / png.name)
        (root / "images" / f"{png.stem}.jpg").touch()  # only the file names are used
    gt_root, image_root = str(root / "annotations_detectron2"), str(root / "images")
    DatasetCatalog.register(
        ADE_DATASET, lambda: load_sem_seg(gt_root, image_root, gt_ext="png", image_ext="jpg")
    )
    MetadataCatalog.get(ADE_DATASET).set(
        stuff_classes=[f"class{i}" for i in range(ADE_NUM_CLASSES)],
        ignore_label=IGNORE_LABEL,
        evaluator_type="sem_seg",
        sem_seg_root=gt_root,
        image_root=image_root,
    )
    return ADE_DATASET


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` by path (the detectron2 wheel installs its own ``tools``)."""
    path = Path(__file__).resolve().parents[2] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"m2f_tools_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_hot_scores(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """[K, H, W] ``sem_seg`` scores whose argmax is ``labels`` [H, W] (``IGNORE_LABEL`` -> 0)."""
    labels = torch.from_numpy(np.where(labels == IGNORE_LABEL, 0, labels).astype(np.int64))
    one_hot = torch.nn.functional.one_hot(labels, num_classes)  # [H, W, K]
    return one_hot.permute(2, 0, 1).float()  # [K, H, W]


def encode_rle(mask: np.ndarray) -> Dict[str, Any]:
    """[H, W] binary mask -> COCO RLE with a json-serialisable ``counts`` string."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle
