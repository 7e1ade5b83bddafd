# Copyright (c) the mask2former authors.
"""A small deterministic synthetic video dataset ("m2f_synthetic_video") in YouTube-VIS format.

Every video (96x128 frames, 5-10 frames) shows 1-3 moving shapes (circles, squares, triangles;
the squares and triangles spin) over a panning textured background. Shapes are drawn in a fixed
depth order, so they occlude each other; some enter the frame from outside, some leave it. The
annotation of a shape in a frame is its *visible* part; a frame where nothing of it is visible has
null ``segmentations`` / ``bboxes`` / ``areas`` entries, as in YouTube-VIS. Generation is seeded
numpy: the same split parameters always give the same bytes. Per split, under ``<root>/<split>/``:

- ``JPEGImages/<video>/<frame>.jpg``   RGB frames (``<video>`` = 00000, 00001, ...)
- ``instances.json``                   YouTube-VIS annotations (RLE segmentations)
- ``COMPLETE``                         written last (see :mod:`.generated`)

Registration (:func:`register_synthetic_video_datasets`) does no file I/O: the files are generated
on the first ``DatasetCatalog.get`` under ``$DETECTRON2_DATASETS/m2f_synthetic_video``.
"""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from .dataset_root import dataset_root
from .generated import ensure_generated
from .ytvis import register_ytvis_instances, ytvis_metadata

__all__ = [
    "SYNTHETIC_VIDEO_CATEGORIES",
    "SYNTHETIC_VIDEO_SPLITS",
    "SyntheticVideoSplit",
    "ensure_synthetic_video_dataset",
    "generate_synthetic_video_split",
    "register_synthetic_video_datasets",
]

# Folder of the dataset under the dataset root.
SYNTHETIC_VIDEO_DIRNAME = "m2f_synthetic_video"
# Bump when the generator changes: cached copies of another version are generated again.
GENERATOR_VERSION = 1

SYNTHETIC_VIDEO_CATEGORIES: List[Dict[str, Any]] = [
    {"id": 1, "name": "circle", "color": [220, 40, 40], "supercategory": "shape"},
    {"id": 2, "name": "square", "color": [60, 90, 220], "supercategory": "shape"},
    {"id": 3, "name": "triangle", "color": [240, 200, 30], "supercategory": "shape"},
]
_CIRCLE, _SQUARE, _TRIANGLE = 1, 2, 3


@dataclass(frozen=True)
class SyntheticVideoSplit:
    """One split: ``num_videos`` videos of ``min_frames``..``max_frames`` frames of
    ``height`` x ``width``, drawn from ``seed``."""

    name: str
    num_videos: int
    seed: int
    height: int = 96
    width: int = 128
    min_frames: int = 5
    max_frames: int = 10


# Built-in splits; registered as m2f_synthetic_video_<name>.
SYNTHETIC_VIDEO_SPLITS: Tuple[SyntheticVideoSplit, ...] = (
    SyntheticVideoSplit("train", num_videos=64, seed=0),
    SyntheticVideoSplit("val", num_videos=16, seed=1),
)


@dataclass(frozen=True)
class _Track:
    """One shape: class, size, depth order, and its centre and angle over time."""

    kind: int
    radius: float
    start: Tuple[float, float]  # (x, y) at frame 0
    velocity: Tuple[float, float]  # pixels per frame
    angle: float
    spin: float  # radians per frame
    tint: Tuple[float, float, float]


def _shape_mask(track: _Track, t: int, height: int, width: int) -> np.ndarray:
    """Boolean [height, width] mask of the whole shape at frame ``t`` (before occlusion), by
    testing pixel centres against the shape's implicit equation."""
    cx = track.start[0] + track.velocity[0] * t
    cy = track.start[1] + track.velocity[1] * t
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    dx, dy = xs - cx, ys - cy
    if track.kind == _CIRCLE:
        return dx * dx + dy * dy <= track.radius**2
    theta = track.angle + track.spin * t
    cos, sin = np.cos(theta), np.sin(theta)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate into the shape's frame
    if track.kind == _SQUARE:
        half = track.radius / np.sqrt(2)  # corners on the circle of the radius
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # Equilateral triangle inscribed in the circle: three half-planes at 120 degrees.
    inside = np.ones((height, width), dtype=bool)
    for k in range(3):
        phi = 2 * np.pi * k / 3
        inside &= np.cos(phi) * u + np.sin(phi) * v <= track.radius / 2
    return inside


def _sample_track(rng: np.random.Generator, height: int, width: int) -> _Track:
    """A random shape that moves inside the frame, enters it from outside or leaves it."""
    radius = float(rng.uniform(0.14, 0.24) * height)
    motion = rng.choice(["inside", "enters", "leaves"], p=[0.4, 0.3, 0.3])
    side = int(rng.integers(4))  # left, right, top, bottom
    outward = np.array([(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)][side])
    along = rng.uniform(0.2, 0.8)
    if motion == "inside":
        x, y = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
        direction, speed = rng.normal(size=2), rng.uniform(1.0, 4.0)
    else:
        # Centre just outside the side (touching it) to enter, or 0.5-1.5 radii inside to leave.
        inset = -radius if motion == "enters" else rng.uniform(0.5, 1.5) * radius
        x = [inset, width - inset, along * width, along * width][side]
        y = [along * height, along * height, inset, height - inset][side]
        sign = -1.0 if motion == "enters" else 1.0
        direction, speed = sign * outward + rng.normal(0.0, 0.3, size=2), rng.uniform(3.0, 7.0)
    velocity = direction / max(float(np.linalg.norm(direction)), 1e-6) * speed
    return _Track(
        kind=int(rng.integers(1, 4)),
        radius=radius,
        start=(float(x), float(y)),
        velocity=(float(velocity[0]), float(velocity[1])),
        angle=float(rng.uniform(0, 2 * np.pi)),
        spin=float(rng.uniform(-0.3, 0.3)),
        tint=tuple(float(c) for c in rng.uniform(-25, 25, size=3)),
    )


def _background(rng: np.random.Generator, height: int, width: int, frames: int) -> np.ndarray:
    """[frames, height, width, 3] float background: a vertical gradient with diagonal stripes
    that pan by a constant offset per frame."""
    top, bottom = rng.uniform(60, 200, size=3), rng.uniform(60, 200, size=3)
    ys, xs = np.mgrid[0:height, 0:width]
    gradient = top + (bottom - top) * (ys / height)[..., None]  # [H, W, 3]
    freq, pan = rng.uniform(0.15, 0.4), rng.uniform(-2.0, 2.0)
    out = np.empty((frames, height, width, 3))
    for t in range(frames):
        stripes = 18.0 * np.sin(freq * (xs + ys + pan * t))
        out[t] = gradient + stripes[..., None]
    return out


def _render_video(
    rng: np.random.Generator, split: SyntheticVideoSplit
) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray]]]:
    """Draw one video.

    Returns:
        frames: [T, H, W, 3] uint8 RGB.
        tracks: ``(category_id, visible)`` per shape seen in at least one frame, in depth order
            (back to front); ``visible``: [T, H, W] bool, the unoccluded part inside the frame.
    """
    h, w = split.height, split.width
    length = int(rng.integers(split.min_frames, split.max_frames + 1))
    colors = {c["id"]: np.asarray(c["color"], dtype=np.float64) for c in SYNTHETIC_VIDEO_CATEGORIES}
    while True:  # resample until at least one shape is seen
        tracks = [_sample_track(rng, h, w) for _ in range(int(rng.integers(1, 4)))]
        full = np.stack(
            [np.stack([_shape_mask(tr, t, h, w) for t in range(length)]) for tr in tracks]
        )  # [K, T, H, W]
        if full.any():
            break
    frames = _background(rng, h, w, length)
    visible = full.copy()
    for k, track in enumerate(tracks):  # back to front: later shapes cover earlier ones
        visible[:k] &= ~full[k]
        shade = 1.0 + 0.2 * (np.mgrid[0:h, 0:w][1] / w - 0.5)[..., None]  # [H, W, 1]
        color = (colors[track.kind] + np.asarray(track.tint)) * shade
        frames[full[k]] = np.broadcast_to(color, (length, h, w, 3))[full[k]]
    frames += rng.normal(0.0, 4.0, size=frames.shape)
    seen = [(tr.kind, visible[k]) for k, tr in enumerate(tracks) if visible[k].any()]
    return np.clip(frames, 0, 255).astype(np.uint8), seen


def _encode(mask: np.ndarray) -> Tuple[Dict[str, Any], float, List[float]]:
    """COCO RLE (``counts`` as str), area and XYWH box of a non-empty [H, W] mask."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle, float(mask_util.area(rle)), [float(v) for v in mask_util.toBbox(rle)]


def generate_synthetic_video_split(out_dir: Path, split: SyntheticVideoSplit) -> None:
    """Write the frames and ``instances.json`` of one split into ``out_dir``."""
    out_dir = Path(out_dir)
    videos, annotations = [], []
    for index in range(split.num_videos):
        frames, tracks = _render_video(np.random.default_rng([split.seed, index]), split)
        name = f"{index:05d}"
        (out_dir / "JPEGImages" / name).mkdir(parents=True, exist_ok=True)
        file_names = []
        for t, frame in enumerate(frames):
            file_names.append(f"{name}/{t:05d}.jpg")
            Image.fromarray(frame).save(out_dir / "JPEGImages" / file_names[-1], quality=95)
        video_id = index + 1
        length, height, width = len(frames), split.height, split.width
        videos.append(
            {
                "id": video_id,
                "width": width,
                "height": height,
                "length": length,
                "file_names": file_names,
            }
        )
        for kind, visible in tracks:
            encoded = [_encode(m) if m.any() else (None, None, None) for m in visible]
            annotations.append(
                {
                    "id": len(annotations) + 1,  # track ids start at 1, as in YouTube-VIS
                    "video_id": video_id,
                    "category_id": kind,
                    "iscrowd": 0,
                    "segmentations": [e[0] for e in encoded],
                    "areas": [e[1] for e in encoded],
                    "bboxes": [e[2] for e in encoded],
                    "height": height,
                    "width": width,
                    "length": length,
                }
            )
    info = {"description": f"m2f_synthetic_video {split.name}", "version": GENERATOR_VERSION}
    content = {
        "info": info,
        "videos": videos,
        "annotations": annotations,
        "categories": SYNTHETIC_VIDEO_CATEGORIES,
    }
    with open(out_dir / "instances.json", "w") as f:
        json.dump(content, f)


def _marker(split: SyntheticVideoSplit) -> Dict[str, Any]:
    return {"version": GENERATOR_VERSION, **asdict(split)}


def ensure_synthetic_video_dataset(
    root: Optional[os.PathLike] = None,
    splits: Tuple[SyntheticVideoSplit, ...] = SYNTHETIC_VIDEO_SPLITS,
) -> Path:
    """Generate every split of ``splits`` under ``root`` (default
    ``$DETECTRON2_DATASETS/m2f_synthetic_video``) unless a complete copy is there. Returns root."""
    root = Path(root) if root is not None else Path(dataset_root()) / SYNTHETIC_VIDEO_DIRNAME
    for split in splits:
        ensure_generated(
            root / split.name,
            _marker(split),
            lambda folder, split=split: generate_synthetic_video_split(folder, split),
        )
    return root


def _generate_then(
    load: Callable[[], List[Dict]], root: Optional[Path], split: SyntheticVideoSplit
) -> Callable[[], List[Dict]]:
    def generate_then_load() -> List[Dict]:
        ensure_synthetic_video_dataset(root, (split,))
        return load()

    return generate_then_load


def register_synthetic_video_datasets(root: Optional[os.PathLike] = None) -> List[str]:
    """Register ``m2f_synthetic_video_{train,val}`` (``evaluator_type`` "ytvis"), generated on
    first load under ``root`` (default: ``$DETECTRON2_DATASETS/m2f_synthetic_video``, read at
    load time). Names already registered are left alone. Returns the dataset names."""
    from detectron2.data import DatasetCatalog

    root = Path(root) if root is not None else None
    names = []
    for split in SYNTHETIC_VIDEO_SPLITS:
        name = f"m2f_synthetic_video_{split.name}"
        names.append(name)
        if name in DatasetCatalog.list():
            continue
        base = f"{SYNTHETIC_VIDEO_DIRNAME}/{split.name}" if root is None else str(root / split.name)
        register_ytvis_instances(
            name,
            ytvis_metadata(SYNTHETIC_VIDEO_CATEGORIES),
            json_file=f"{base}/instances.json",
            image_root=f"{base}/JPEGImages",
            root_relative=root is None,
        )
        load = DatasetCatalog[name]
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, _generate_then(load, root, split))
    return names
