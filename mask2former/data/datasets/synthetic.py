"""A small deterministic synthetic panoptic dataset ("m2f_synthetic") in COCO-panoptic format.

Every image shows a scene of *stuff* bands (sky above a horizon; grass and/or water below it)
and 1-4 *things* (circles, squares, triangles) of distinct colours, which may partly occlude each
other. The generator is seeded numpy, so the same arguments always give the same bytes. It writes,
per split, under ``<root>/<split>/``:

- ``images/<id>.jpg``                 RGB images
- ``panoptic/<id>.png``               COCO-panoptic RGB-id PNGs (id = R + 256 G + 256^2 B)
- ``panoptic_semseg/<id>.png``        semantic labels (contiguous ids of all categories)
- ``panoptic.json``                   COCO-panoptic annotations (``segments_info`` per image)
- ``instances.json``                  COCO instance annotations (things only, RLE) for AP
- ``COMPLETE``                        written last; a missing or stale marker means re-generate

Registration (``register_synthetic_datasets``) does no file I/O: the files are generated on the
first ``DatasetCatalog.get``; later calls reuse them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from mask2former.data.panoptic_format import (
    coco_instance_annotation,
    id_to_rgb,
    panoptic_segment_info,
    semantic_from_panoptic,
    write_json,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_SPLITS",
    "SyntheticSplit",
    "default_synthetic_root",
    "generate_synthetic_split",
    "ensure_synthetic_dataset",
    "get_synthetic_metadata",
    "register_synthetic_datasets",
]

# Folder of the dataset under the dataset root.
SYNTHETIC_DIRNAME = "m2f_synthetic"
# Bump when the generator changes: cached copies with another version are re-generated.
GENERATOR_VERSION = 1

# COCO-panoptic categories: things first, then stuff. "color" is the visualisation colour.
SYNTHETIC_CATEGORIES: List[Dict[str, Any]] = [
    {"id": 1, "name": "circle", "isthing": 1, "color": [220, 40, 40], "supercategory": "shape"},
    {"id": 2, "name": "square", "isthing": 1, "color": [150, 60, 200], "supercategory": "shape"},
    {"id": 3, "name": "triangle", "isthing": 1, "color": [240, 200, 30], "supercategory": "shape"},
    {"id": 4, "name": "sky", "isthing": 0, "color": [120, 170, 235], "supercategory": "scene"},
    {"id": 5, "name": "grass", "isthing": 0, "color": [60, 150, 60], "supercategory": "scene"},
    {"id": 6, "name": "water", "isthing": 0, "color": [30, 110, 130], "supercategory": "scene"},
]
_CIRCLE, _SQUARE, _TRIANGLE, _SKY, _GRASS, _WATER = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class SyntheticSplit:
    """One split: ``num_images`` square images of side ``image_size``, drawn from ``seed``."""

    name: str
    num_images: int
    image_size: int
    seed: int


# Built-in splits; registered as m2f_synthetic_panoptic_<name>.
SYNTHETIC_SPLITS: Tuple[SyntheticSplit, ...] = (
    SyntheticSplit("train", num_images=320, image_size=96, seed=0),
    SyntheticSplit("val", num_images=50, image_size=96, seed=1),
)


def default_synthetic_root() -> Path:
    """``$DETECTRON2_DATASETS/m2f_synthetic`` (``./datasets/m2f_synthetic`` if unset), read now."""
    from mask2former.data.datasets.dataset_root import dataset_root

    return Path(dataset_root()) / SYNTHETIC_DIRNAME


# ----------------------------------------------------------------------------- drawing
def _shape_mask(kind: int, cx: float, cy: float, r: float, angle: float, size: int) -> np.ndarray:
    """Boolean [size, size] mask of one thing: a circle, a rotated square or a rotated triangle."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == _CIRCLE:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        n = 4 if kind == _SQUARE else 3
        scale = r * (1.0 if kind == _SQUARE else 1.15)
        pts = [
            (
                cx + scale * np.cos(angle + 2 * np.pi * k / n),
                cy + scale * np.sin(angle + 2 * np.pi * k / n),
            )
            for k in range(n)
        ]
        draw.polygon(pts, fill=1)
    return np.asarray(canvas, dtype=bool)


def _texture(rng: np.random.Generator, color: List[int], size: int, noise: float) -> np.ndarray:
    """[size, size, 3] float image: ``color`` with a per-image tint and pixel noise."""
    tint = rng.uniform(-18, 18, size=3)
    base = np.asarray(color, dtype=np.float64) + tint
    return base[None, None, :] + rng.normal(0, noise, size=(size, size, 3))


def _render_sample(
    rng: np.random.Generator, size: int
) -> Tuple[np.ndarray, np.ndarray, List[Tuple[int, int]]]:
    """Draw one scene.

    Returns:
        image: [size, size, 3] uint8 RGB.
        seg: [size, size] int32 segment ids (1..N, every pixel labelled).
        segments: ``(segment_id, category_id)`` for every id present in ``seg``.
    """
    yy, xx = np.mgrid[0:size, 0:size]
    colors = {c["id"]: c["color"] for c in SYNTHETIC_CATEGORIES}

    # Stuff: sky above a slanted horizon, grass / water (or both, split by a slanted line) below.
    horizon = rng.uniform(0.3, 0.6) * size + rng.uniform(-0.15, 0.15) * (xx - size / 2)
    sky = yy < horizon
    layout = rng.integers(3)  # 0: grass, 1: water, 2: both
    if layout == 2:
        split_x = rng.uniform(0.3, 0.7) * size + rng.uniform(-0.5, 0.5) * (yy - size / 2)
        water = ~sky & ((xx >= split_x) if rng.random() < 0.5 else (xx < split_x))
    else:
        water = ~sky & np.full_like(sky, layout == 1)
    stuff_cat = np.where(sky, _SKY, np.where(water, _WATER, _GRASS))

    image = np.zeros((size, size, 3), dtype=np.float64)
    sky_tex = _texture(rng, colors[_SKY], size, 4.0) + (yy[..., None] / size) * 40.0
    grass_tex = _texture(rng, colors[_GRASS], size, 14.0)
    stripes = 12.0 * np.sin(yy * rng.uniform(0.8, 1.4) + rng.uniform(0, 2 * np.pi))
    water_tex = _texture(rng, colors[_WATER], size, 5.0) + stripes[..., None]
    for cat, tex in ((_SKY, sky_tex), (_GRASS, grass_tex), (_WATER, water_tex)):
        image[stuff_cat == cat] = tex[stuff_cat == cat]

    # Things: drawn in order (later ones occlude earlier ones); resample the layout until every
    # instance keeps >= 60% of its area visible so that each one stays recognisable.
    num_things = int(rng.integers(1, 5))
    for _ in range(50):
        things = []
        for _ in range(num_things):
            kind = int(rng.integers(1, 4))
            r = rng.uniform(0.11, 0.2) * size
            cx, cy = rng.uniform(r * 0.6, size - r * 0.6, size=2)
            things.append((kind, _shape_mask(kind, cx, cy, r, rng.uniform(0, 2 * np.pi), size)))
        owner = np.full((size, size), -1, dtype=np.int64)
        for i, (_, mask) in enumerate(things):
            owner[mask] = i
        visible = [(owner == i).sum() / max(m.sum(), 1) for i, (_, m) in enumerate(things)]
        if min(visible) >= 0.6 and min(m.sum() for _, m in things) >= 30:
            break

    seg = np.zeros((size, size), dtype=np.int32)
    segments: List[Tuple[int, int]] = []
    next_id = 1
    for cat in (_SKY, _GRASS, _WATER):
        if (stuff_cat == cat).any():
            seg[stuff_cat == cat] = next_id
            segments.append((next_id, cat))
            next_id += 1
    for i, (kind, _) in enumerate(things):
        region = owner == i
        tex = _texture(rng, colors[kind], size, 6.0)
        shade = 1.0 + 0.15 * (xx - size / 2)[..., None] / size  # a little lighting
        image[region] = (tex * shade)[region]
        seg[region] = next_id
        segments.append((next_id, kind))
        next_id += 1
    return np.clip(image, 0, 255).astype(np.uint8), seg, segments


# ----------------------------------------------------------------------------- writing
def _contiguous_ids() -> Dict[int, int]:
    return {c["id"]: i for i, c in enumerate(SYNTHETIC_CATEGORIES)}


def generate_synthetic_split(out_dir: Path, split: SyntheticSplit) -> None:
    """Write one split (images, panoptic PNGs + json, semantic PNGs, instances json)."""
    out_dir = Path(out_dir)
    for sub in ("images", "panoptic", "panoptic_semseg"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    contiguous = _contiguous_ids()
    thing_categories = [c for c in SYNTHETIC_CATEGORIES if c["isthing"]]
    things = {c["id"] for c in thing_categories}
    images, pan_anns, inst_anns = [], [], []
    for index in range(split.num_images):
        rng = np.random.default_rng([split.seed, index])
        image, seg, segments = _render_sample(rng, split.image_size)
        image_id = index + 1
        stem = f"{index:06d}"
        Image.fromarray(image).save(out_dir / "images" / f"{stem}.jpg", quality=95)
        Image.fromarray(id_to_rgb(seg)).save(out_dir / "panoptic" / f"{stem}.png")
        segments_info = [panoptic_segment_info(seg == i, i, cat) for i, cat in segments]
        semseg = semantic_from_panoptic(seg, segments_info, category_map=contiguous)
        Image.fromarray(semseg).save(out_dir / "panoptic_semseg" / f"{stem}.png")
        for segment_id, cat in segments:
            if cat in things:  # COCOeval never matches an annotation id of 0: ids start at 1
                annotation_id = len(inst_anns) + 1
                inst_anns.append(
                    coco_instance_annotation(seg == segment_id, annotation_id, image_id, cat)
                )
        size = split.image_size
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "width": size, "height": size})
        pan_anns.append(
            {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments_info}
        )
    info = {"description": f"m2f_synthetic {split.name}", "version": GENERATOR_VERSION}
    for file_name, anns, categories in (
        ("panoptic.json", pan_anns, SYNTHETIC_CATEGORIES),
        ("instances.json", inst_anns, thing_categories),
    ):
        content = {"images": images, "annotations": anns, "categories": categories}
        write_json(out_dir / file_name, {"info": info, **content})


def _marker(split: SyntheticSplit) -> Dict[str, Any]:
    return {"version": GENERATOR_VERSION, **split.__dict__}


def _is_complete(split_dir: Path, split: SyntheticSplit) -> bool:
    try:
        return json.loads((split_dir / "COMPLETE").read_text()) == _marker(split)
    except (OSError, ValueError):
        return False


def ensure_synthetic_dataset(
    root: Optional[os.PathLike] = None, splits: Tuple[SyntheticSplit, ...] = SYNTHETIC_SPLITS
) -> Path:
    """Generate every split of ``splits`` under ``root`` unless a complete copy is already there.

    A split is generated into a temporary sibling folder and moved into place, so an interrupted
    run never leaves a folder that looks complete. Returns ``root``.
    """
    root = Path(root) if root is not None else default_synthetic_root()
    root.mkdir(parents=True, exist_ok=True)
    for split in splits:
        split_dir = root / split.name
        if _is_complete(split_dir, split):
            continue
        logger.info(
            "Generating synthetic split %r (%d images) in %s",
            split.name,
            split.num_images,
            split_dir,
        )
        tmp = Path(tempfile.mkdtemp(prefix=f".{split.name}-", dir=root))
        try:
            generate_synthetic_split(tmp, split)
            (tmp / "COMPLETE").write_text(json.dumps(_marker(split)))
            if split_dir.exists() and not _is_complete(split_dir, split):
                shutil.rmtree(split_dir)
            try:
                tmp.rename(split_dir)
            except OSError:
                if not _is_complete(split_dir, split):  # another process won the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


# ----------------------------------------------------------------------------- registration
def get_synthetic_metadata() -> Dict[str, Any]:
    """Detectron2 metadata in the Mask2Former COCO-panoptic convention (see
    :func:`mask2former.data.datasets.register.panoptic_metadata`)."""
    from mask2former.data.datasets.register import panoptic_metadata

    return panoptic_metadata(SYNTHETIC_CATEGORIES)


def _lazy(
    load: Callable[[], List[Dict]], root: Optional[Path], split: SyntheticSplit
) -> Callable[[], List[Dict]]:
    def generate_then_load() -> List[Dict]:
        ensure_synthetic_dataset(root, (split,))
        return load()

    return generate_then_load


def register_synthetic_datasets(root: Optional[os.PathLike] = None) -> List[str]:
    """Register ``m2f_synthetic_panoptic_{train,val}``, generated on first load under ``root``.

    With ``root=None`` the paths follow ``$DETECTRON2_DATASETS`` at load time
    (``$DETECTRON2_DATASETS/m2f_synthetic``). The datasets report PQ, AP (``instances.json``) and
    mIoU (``panoptic_semseg``) through the ``coco_panoptic_seg`` evaluators. Names already
    registered are left alone. Returns the dataset names.
    """
    from detectron2.data import DatasetCatalog

    from mask2former.data.datasets.register import register_panoptic_dataset

    root = Path(root) if root is not None else None
    names = []
    for split in SYNTHETIC_SPLITS:
        name = f"m2f_synthetic_panoptic_{split.name}"
        names.append(name)
        if name in DatasetCatalog.list():
            continue
        base = f"{SYNTHETIC_DIRNAME}/{split.name}" if root is None else str(root / split.name)
        register_panoptic_dataset(
            name,
            get_synthetic_metadata(),
            image_root=f"{base}/images",
            panoptic_root=f"{base}/panoptic",
            panoptic_json=f"{base}/panoptic.json",
            sem_seg_root=f"{base}/panoptic_semseg",
            instances_json=f"{base}/instances.json",
            evaluator_type="coco_panoptic_seg",
            root_relative=root is None,
        )
        load = DatasetCatalog[name]
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, _lazy(load, root, split))
    return names
