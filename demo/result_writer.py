# Demo outputs: where each input's picture goes, and the machine-readable results (--save-json)
# written beside the pictures as they come, so that memory does not grow with the number of inputs.
import json
import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image

from mask2former.utils.result_formats import (
    coco_categories,
    instances_to_coco_results,
    panoptic_to_coco,
    semantic_classes,
    semantic_label_map,
)

INSTANCES_JSON = "coco_instances_results.json"
PANOPTIC_JSON = "panoptic.json"
PANOPTIC_DIR = "panoptic"
SEMANTIC_JSON = "sem_seg_classes.json"
SEMANTIC_DIR = "sem_seg"


def picture_paths(paths: Sequence[str], output: str, save_json: bool) -> dict[str, str]:
    """Input path -> output picture path.

    ``output`` is a folder (it exists, ends with a separator, has no file extension, or there is
    more than one input) that receives each input's base name, or else the picture file of the
    single input. A base name OpenCV cannot write keeps its stem with ".png".

    Raises:
        ValueError: when two inputs would write the same picture, or (with ``save_json``, whose
            files are named by the picture's stem) the same result files; when ``output`` is a
            file and there are several inputs.
    """
    as_folder = (
        os.path.isdir(output)
        or output.endswith(os.sep)
        or not os.path.splitext(output)[1]
        or len(paths) > 1
    )
    if as_folder and os.path.isfile(output):
        raise ValueError(f"--output {output!r} is a file, but there are {len(paths)} inputs")
    targets: dict[str, str] = {}
    claimed: dict[str, str] = {}
    for path in paths:
        target = os.path.join(output, os.path.basename(path)) if as_folder else output
        if not cv2.haveImageWriter(target):
            target = os.path.splitext(target)[0] + ".png"
        key = os.path.splitext(target)[0] if save_json else target
        if key in claimed:
            raise ValueError(
                f"inputs {claimed[key]!r} and {path!r} would both write {key}.*: rename one, or "
                "run them with different --output folders"
            )
        claimed[key] = path
        targets[path] = target
    return targets


def coco_image_ids(paths: Sequence[str]) -> dict[str, Any]:
    """``image_id`` of each input: the number of its name when every name is a number (as COCO's
    ``000000000139.jpg``), else its base name."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if stems and all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(stems):
        return {p: int(s) for p, s in zip(paths, stems)}
    return {p: os.path.basename(p) for p in paths}


class _JsonArrayFile:
    """A json file whose one array is written an element at a time (``head``, the elements
    separated by commas, ``tail``); it appears under its name when closed."""

    def __init__(self, path: str, head: str = "[", tail: str = "]") -> None:
        self.path = path
        self.tail = tail
        self.count = 0
        self.file = open(path + ".partial", "w", encoding="utf-8")
        self.file.write(head)

    def extend(self, elements: Sequence[Any]) -> None:
        for element in elements:
            self.file.write(("," if self.count else "") + "\n" + json.dumps(element))
            self.count += 1

    def close(self) -> None:
        self.file.write("\n" + self.tail + "\n")
        self.file.close()
        os.replace(self.path + ".partial", self.path)


class JsonResults:
    """``--save-json`` outputs in ``folder``, for each prediction key the model returns.

    - ``instances``: ``coco_instances_results.json``, a COCO results list (pycocotools
      ``loadRes``) with ``image_id``, ``file_name``, ``category_id`` (dataset id), ``score``,
      ``bbox`` (XYWH) and ``segmentation`` (RLE); every instance, whatever its score.
    - ``panoptic_seg``: ``panoptic/<stem>.png`` (RGB-encoded segment ids) and ``panoptic.json``
      (COCO panoptic: ``categories``, ``annotations`` with ``image_id``, ``file_name`` and
      ``segments_info`` with dataset ``category_id``, ``isthing``, ``area``, ``bbox``).
    - ``sem_seg``: ``sem_seg/<stem>.png`` (class index per pixel, 8 or 16 bits) and
      ``sem_seg_classes.json`` (index -> name and dataset id).
    """

    def __init__(self, folder: str, metadata: Any) -> None:
        self.folder = folder
        self.metadata = metadata
        self.files: dict[str, _JsonArrayFile] = {}
        self.semantic_classes_written = False

    def _file(self, name: str, head: str = "[", tail: str = "]") -> _JsonArrayFile:
        if name not in self.files:
            self.files[name] = _JsonArrayFile(os.path.join(self.folder, name), head, tail)
        return self.files[name]

    def add(self, prediction: dict, image_id: Any, file_name: str, stem: str) -> None:
        """Append the results of one image (``file_name``: its input's base name)."""
        if "instances" in prediction:
            results = instances_to_coco_results(
                prediction["instances"], image_id, self.metadata, file_name
            )
            self._file(INSTANCES_JSON).extend(results)
        if "panoptic_seg" in prediction:
            rgb, segments_info = panoptic_to_coco(*prediction["panoptic_seg"], self.metadata)
            _save_png(os.path.join(self.folder, PANOPTIC_DIR, stem + ".png"), rgb)
            head = '{"categories": ' + json.dumps(coco_categories(self.metadata))
            annotation = {"image_id": image_id, "file_name": stem + ".png"}
            annotation["segments_info"] = segments_info
            self._file(PANOPTIC_JSON, head + ', "annotations": [', "]}").extend([annotation])
        if "sem_seg" in prediction:
            sem_seg = prediction["sem_seg"]
            labels = semantic_label_map(sem_seg)
            _save_png(os.path.join(self.folder, SEMANTIC_DIR, stem + ".png"), labels)
            if not self.semantic_classes_written:
                table = {"classes": semantic_classes(self.metadata, sem_seg.shape[0])}
                with open(os.path.join(self.folder, SEMANTIC_JSON), "w", encoding="utf-8") as f:
                    json.dump(table, f, indent=1)
                self.semantic_classes_written = True

    def close(self) -> None:
        for file in self.files.values():
            file.close()
        self.files = {}


def _save_png(path: str, array: np.ndarray) -> None:
    """Save a [H, W] uint8/uint16 or [H, W, 3] uint8 array losslessly."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
