"""Bad inputs to the image mappers and loaders: each gets a clear error naming the file, a counted
skip in training (see ``mask2former/data/bad_samples.py`` and the "Bad data" section of
``datasets/README.md``), or the right conversion. Real samples (``samples/``) and tiny generated
files."""

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
import torch
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.utils.events import EventStorage
from PIL import Image, ImageFile

from mask2former.data.bad_samples import (
    BAD_SAMPLES_KEY,
    MissingFileError,
    SkippedSampleCounter,
    UnreadableFileError,
)
from mask2former.data.datasets.loaders import load_instance_json, load_panoptic_json
from mask2former.data.datasets.register import panoptic_metadata
from mask2former.data.image_io import read_image
from mask2former.data.mappers import (
    COCOInstanceNewBaselineDatasetMapper,
    COCOPanopticNewBaselineDatasetMapper,
    MaskFormerInstanceDatasetMapper,
    MaskFormerPanopticDatasetMapper,
    MaskFormerSemanticDatasetMapper,
)
from mask2former.data.panoptic_format import id_to_rgb, rgb_to_id

SAMPLES = Path(__file__).parent / "samples"
COCO_IMAGE = SAMPLES / "coco_panoptic" / "images" / "000000439180.jpg"
ADE_LABEL = SAMPLES / "ade20k" / "annotations" / "ADE_val_00000001.png"
EXIF_ORIENTATION = 0x0112


def instance_mapper(is_train: bool = True, num_classes: int = 3) -> MaskFormerInstanceDatasetMapper:
    """No augmentation: outputs are in the image's own frame."""
    return MaskFormerInstanceDatasetMapper(
        is_train,
        augmentations=[],
        image_format="RGB",
        num_classes=num_classes,
        size_divisibility=-1,
    )


def panoptic_mappers(num_classes: int) -> List[Any]:
    common = {"augmentations": [], "image_format": "RGB", "num_classes": num_classes}
    return [
        MaskFormerPanopticDatasetMapper(True, ignore_label=255, size_divisibility=-1, **common),
        COCOPanopticNewBaselineDatasetMapper(True, **common),
    ]


def semantic_mapper(num_classes: int = 150) -> MaskFormerSemanticDatasetMapper:
    return MaskFormerSemanticDatasetMapper(
        True,
        augmentations=[],
        image_format="RGB",
        num_classes=num_classes,
        ignore_label=255,
        size_divisibility=-1,
    )


def save_image(path: Path, array: np.ndarray, **kwargs: Any) -> str:
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def gray_image(path: Path, height: int = 24, width: int = 32) -> str:
    return save_image(path, np.full((height, width, 3), 100, dtype=np.uint8))


def square(x0: float, y0: float, x1: float, y1: float) -> List[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def instance_dict(file_name: str, annotations: List[Dict], height=24, width=32) -> Dict[str, Any]:
    return {"file_name": file_name, "height": height, "width": width, "annotations": annotations}


def obj(segmentation: Any, category_id: int = 0, iscrowd: int = 0, id: int = 1) -> Dict:
    return {
        "id": id,
        "segmentation": segmentation,
        "bbox": [0, 0, 1, 1],
        "bbox_mode": 1,  # XYWH_ABS
        "category_id": category_id,
        "iscrowd": iscrowd,
    }


def counted(*outputs: Optional[Dict[str, Any]]) -> Dict[str, float]:
    """The scalars that :class:`SkippedSampleCounter` puts for a batch of mapped samples."""
    batch = [out for out in outputs if out is not None]
    with EventStorage() as storage:
        for _ in SkippedSampleCounter([batch]):
            pass
        assert all(BAD_SAMPLES_KEY not in out for out in batch)
        return {k: v for k, (v, _) in storage.latest().items() if k.startswith("data/")}


# Missing and unreadable files


def test_missing_image_is_skipped_and_counted_in_training(tmp_path: Path, caplog) -> None:
    missing = str(tmp_path / "missing.jpg")
    mapper = instance_mapper()
    assert mapper(instance_dict(missing, [obj([square(2, 2, 10, 10)])])) is None
    good = mapper(instance_dict(gray_image(tmp_path / "good.png"), [obj([square(2, 2, 9, 9)])]))
    assert len(good["instances"]) == 1
    assert counted(good) == {"data/skipped_missing_file": 1}
    assert missing in caplog.text and "Skipped training sample" in caplog.text


def test_missing_image_is_an_error_in_inference(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jpg")
    with pytest.raises(MissingFileError, match="File not found: .*missing.jpg") as error:
        instance_mapper(is_train=False)({"file_name": missing})
    assert isinstance(error.value, FileNotFoundError)


def truncated(source: Path, tmp_path: Path, keep: float = 0.5) -> str:
    data = source.read_bytes()
    path = tmp_path / f"truncated_{source.name}"
    path.write_bytes(data[: int(len(data) * keep)])
    return str(path)


def corrupt_png(tmp_path: Path) -> str:
    """A PNG whose compressed pixel data has flipped bytes (its CRC check fails)."""
    data = bytearray(ADE_LABEL.read_bytes())
    start = data.index(b"IDAT") + 20
    data[start : start + 40] = bytes(255 - b for b in data[start : start + 40])
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    return str(path)


BROKEN_FILES = {
    "truncated_jpeg": lambda tmp: truncated(COCO_IMAGE, tmp),
    "truncated_png": lambda tmp: truncated(ADE_LABEL, tmp),
    "corrupt_png": corrupt_png,
    "not_an_image": lambda tmp: str(
        (tmp / "x.jpg").write_bytes(b"<html>404</html>") and tmp / "x.jpg"
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_FILES))
def test_unreadable_image_names_the_file(kind: str, tmp_path: Path) -> None:
    path = BROKEN_FILES[kind](tmp_path)
    for format in ("RGB", None):  # images and label maps
        with pytest.raises(UnreadableFileError, match="Cannot decode") as error:
            read_image(path, format)
        assert path in str(error.value)
    with pytest.raises(UnreadableFileError):
        instance_mapper(is_train=False)({"file_name": path})
    assert instance_mapper()(instance_dict(path, [])) is None
    good = instance_mapper()(instance_dict(gray_image(tmp_path / "good.png"), []))
    assert counted(good) == {"data/skipped_unreadable_file": 1}


def test_truncated_label_map_is_skipped_in_training(tmp_path: Path) -> None:
    image = gray_image(tmp_path / "image.png", 512, 683)  # the size of ADE_val_00000001
    broken = {"file_name": image, "sem_seg_file_name": truncated(ADE_LABEL, tmp_path)}
    mapper = semantic_mapper()
    assert mapper(broken) is None
    good = mapper({"file_name": image, "sem_seg_file_name": str(ADE_LABEL)})
    assert counted(good) == {"data/skipped_unreadable_file": 1}


def test_truncated_images_flag_is_off_and_does_not_matter(tmp_path: Path) -> None:
    """PIL's LOAD_TRUNCATED_IMAGES (grey fill instead of an error) stays off after importing the
    project; when other code switches it on, a truncated file is still an error, and the user's
    setting is left as it was."""
    import mask2former  # noqa: F401
    import mask2former.engine  # noqa: F401

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(UnreadableFileError, match="corrupt or truncated"):
            read_image(truncated(COCO_IMAGE, tmp_path), "RGB")
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


# Image modes


def _rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)


def _mode_case(mode: str, tmp_path: Path):
    """(file, expected RGB array) for an image stored in PIL ``mode``."""
    rgb = _rgb()
    if mode == "I;16":  # 16-bit grayscale PNG: scaled to 8 bits, not clipped at 255
        values = np.linspace(0, 65535, 48).reshape(6, 8).astype(np.uint16)
        expected = np.round(values / 257).astype(np.uint8)
        return save_image(tmp_path / "g16.png", values), np.repeat(expected[..., None], 3, -1)
    if mode == "RGB16":  # 48-bit RGB PNG, written by OpenCV (BGR order)
        import cv2

        values = np.random.default_rng(1).integers(0, 65536, (6, 8, 3), dtype=np.uint16)
        cv2.imwrite(str(tmp_path / "rgb16.png"), values[..., ::-1])
        return str(tmp_path / "rgb16.png"), (values >> 8).astype(np.uint8)
    image = Image.fromarray(rgb).convert(mode)
    path = str(tmp_path / f"{mode}.{'tif' if mode == 'CMYK' else 'png'}")
    image.save(path)
    return path, np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "1", "CMYK", "I;16", "RGB16"])
def test_image_modes_are_read_as_8_bit_rgb(mode: str, tmp_path: Path) -> None:
    path, expected = _mode_case(mode, tmp_path)
    image = read_image(path, "RGB")
    assert image.dtype == np.uint8 and image.shape == (6, 8, 3)
    np.testing.assert_allclose(
        image.astype(int), expected.astype(int), atol=1 if mode == "RGB16" else 0
    )
    np.testing.assert_array_equal(read_image(path, "BGR"), image[..., ::-1])
    out = instance_mapper(is_train=False)({"file_name": path})
    assert out["image"].shape == (3, 6, 8) and out["image"].dtype == torch.uint8


def test_rgba_alpha_is_dropped_not_blended(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb(), np.zeros((6, 8), np.uint8)])  # fully transparent
    np.testing.assert_array_equal(read_image(save_image(tmp_path / "a.png", rgba), "RGB"), _rgb())


def test_label_maps_keep_their_stored_values(tmp_path: Path) -> None:
    labels16 = np.array([[0, 300], [65535, 847]], dtype=np.uint16)  # e.g. ADE20K-full labels
    np.testing.assert_array_equal(read_image(save_image(tmp_path / "l16.png", labels16)), labels16)
    palette = Image.fromarray(np.array([[0, 1], [2, 255]], dtype=np.uint8), "P")
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])  # VOC-style labels
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "p.png")), [[0, 1], [2, 255]])


# EXIF orientation and sizes

# Stored image = upright image transposed by the inverse of what the EXIF orientation asks.
INVERSE_OF_ORIENTATION = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
}


@pytest.mark.parametrize("orientation", sorted(INVERSE_OF_ORIENTATION))
def test_exif_rotated_image_is_upright_and_matches_its_annotation(
    orientation: int, tmp_path: Path
) -> None:
    """COCO annotations are in the upright frame (as detectron2's read_image loads images)."""
    upright = np.zeros((40, 60, 3), dtype=np.uint8)  # H=40, W=60
    upright[5:15, 40:55] = 255  # a white box at x 40..55, y 5..15
    stored = Image.fromarray(upright).transpose(INVERSE_OF_ORIENTATION[orientation])
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = str(tmp_path / f"exif{orientation}.jpg")
    stored.save(path, exif=exif, quality=100)

    image = read_image(path, "RGB")
    assert image.shape == (40, 60, 3)
    assert np.abs(image.astype(int) - upright).max() < 40  # JPEG loss only
    record = instance_dict(path, [obj([square(40, 5, 55, 15)])], height=40, width=60)
    out = instance_mapper()(record)
    (mask,) = out["instances"].gt_masks
    assert out["image"][:, mask].float().mean() > 200  # the mask covers the white box
    assert out["image"][:, ~mask].float().mean() < 20


def test_image_size_different_from_annotation_is_an_error(tmp_path: Path) -> None:
    path = gray_image(tmp_path / "image.png", 24, 32)
    for is_train in (True, False):
        with pytest.raises(SizeMismatchError, match=r"image.png' is 32x24 \(WxH\).*says 30x20"):
            instance_mapper(is_train)(instance_dict(path, [], height=20, width=30))
    with pytest.raises(SizeMismatchError, match="swapped.*EXIF"):
        instance_mapper()(instance_dict(path, [], height=32, width=24))
    labels = save_image(tmp_path / "labels.png", np.zeros((20, 32), np.uint8))
    with pytest.raises(ValueError, match=r"labels.png' has size 32x20.*image.png' has size 32x24"):
        semantic_mapper()({"file_name": path, "sem_seg_file_name": labels})


def test_rle_of_another_size_is_an_error(tmp_path: Path) -> None:
    rle = {"size": [20, 32], "counts": [640]}  # uncompressed RLE of an empty 20x32 mask
    record = instance_dict(gray_image(tmp_path / "image.png"), [obj(rle)])
    with pytest.raises(SizeMismatchError, match=r"RLE mask of object 1 of .*image.png.*\[20, 32\]"):
        instance_mapper()(record)


# Category ids


def test_unknown_category_id_in_an_instances_json_names_the_json(tmp_path: Path) -> None:
    content = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 24, "width": 32}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 99,
                "iscrowd": 0,
                "bbox": [1, 1, 5, 5],
                "segmentation": [square(1, 1, 6, 6)],
                "area": 25,
            }
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    json_file = tmp_path / "instances.json"
    json_file.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"instances.json.*category_id=99"):
        load_instance_json(str(json_file), str(tmp_path), "test_unknown_category_json")


def test_unknown_category_id_in_a_panoptic_json_names_the_json(
    coco_json: dict, tmp_path: Path
) -> None:
    content = json.loads(json.dumps(coco_json))
    content["annotations"][0]["segments_info"][0]["category_id"] = 999
    json_file = tmp_path / "panoptic.json"
    json_file.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"category_id 999"):
        load_panoptic_json(
            str(json_file), str(tmp_path), str(tmp_path), panoptic_metadata(coco_json["categories"])
        )


def test_class_outside_the_metadata_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = gray_image(tmp_path / "image.png")
    with pytest.raises(ValueError, match=r"image.png' has category_id 5 outside \[0, 3\)"):
        instance_mapper()(instance_dict(path, [obj([square(2, 2, 9, 9)], category_id=5)]))


def test_semantic_labels_above_the_classes_are_an_error(tmp_path: Path) -> None:
    path = gray_image(tmp_path / "image.png")
    labels = np.zeros((24, 32), np.uint8)
    labels[0, 0], labels[1, 1] = 150, 255  # 150 classes (0..149); 255 is the ignore label
    label_file = save_image(tmp_path / "labels.png", labels)
    with pytest.raises(ValueError, match=r"labels.png' holds labels \[150\] outside \[0, 150\)"):
        semantic_mapper()({"file_name": path, "sem_seg_file_name": label_file})
    labels[0, 0] = 149
    out = semantic_mapper()(
        {"file_name": path, "sem_seg_file_name": save_image(tmp_path / "ok.png", labels)}
    )
    assert out["instances"].gt_classes.tolist() == [0, 149]


# Images without usable annotations


def test_image_without_objects_is_kept_as_a_negative(tmp_path: Path) -> None:
    path = gray_image(tmp_path / "image.png")
    lsj = COCOInstanceNewBaselineDatasetMapper(
        True, augmentations=[], image_format="RGB", num_classes=3
    )
    for mapper in (instance_mapper(), lsj):
        out = mapper(instance_dict(path, []))
        assert len(out["instances"]) == 0
        assert out["instances"].gt_masks.shape == (0, 24, 32)
        assert BAD_SAMPLES_KEY not in out


def test_unlabelled_panoptic_and_semantic_images_are_skipped(tmp_path: Path) -> None:
    path = gray_image(tmp_path / "image.png")
    void = save_image(tmp_path / "void.png", np.zeros((24, 32, 3), np.uint8))
    for mapper in panoptic_mappers(num_classes=3):
        record = {"file_name": path, "pan_seg_file_name": void, "segments_info": []}
        assert mapper(record) is None
    ignored = save_image(tmp_path / "ignored.png", np.full((24, 32), 255, np.uint8))
    assert semantic_mapper()({"file_name": path, "sem_seg_file_name": ignored}) is None
    good = instance_mapper()(instance_dict(path, []))
    assert counted(good) == {"data/skipped_no_annotations": 3}


def test_crowd_only_images_are_skipped(tmp_path: Path) -> None:
    path = gray_image(tmp_path / "image.png")
    crowd = [obj([square(2, 2, 20, 20)], iscrowd=1)]
    lsj = COCOInstanceNewBaselineDatasetMapper(
        True, augmentations=[], image_format="RGB", num_classes=3
    )
    assert instance_mapper()(instance_dict(path, crowd)) is None
    assert lsj(instance_dict(path, crowd)) is None
    ids = np.zeros((24, 32), np.int64)
    ids[2:20, 2:20] = 5
    png = save_image(tmp_path / "crowd.png", id_to_rgb(ids))
    segments = [{"id": 5, "category_id": 1, "iscrowd": 1, "isthing": True}]
    for mapper in panoptic_mappers(num_classes=3):
        assert (
            mapper({"file_name": path, "pan_seg_file_name": png, "segments_info": segments}) is None
        )
    # one non-crowd object is enough to train on the image
    mixed = crowd + [obj([square(22, 2, 30, 10)], id=2)]
    good = instance_mapper()(instance_dict(path, mixed))
    assert len(good["instances"]) == 1
    assert counted(good) == {"data/skipped_crowd_only": 4}


# Degenerate polygons


def test_degenerate_polygons_are_dropped_and_counted(tmp_path: Path) -> None:
    path = gray_image(tmp_path / "image.png")
    annotations = [
        obj([square(2, 2, 8, 8)], id=1),  # valid
        obj([[4, 4, 20, 20]], id=2),  # 2 points: pycocotools would read it as a 20x20 box
        obj([[1, 1, 10, 10, 19, 19]], id=3),  # 3 collinear points: zero area
        obj([[5, 5, 6, 6]], id=4),  # 2 points again
        obj([square(20, 2, 30, 12), [0, 0, 3, 3]], id=5),  # valid + degenerate part
    ]
    for mapper in (
        instance_mapper(),
        COCOInstanceNewBaselineDatasetMapper(
            True, augmentations=[], image_format="RGB", num_classes=3
        ),
    ):
        out = mapper(instance_dict(path, annotations))
        masks = out["instances"].gt_masks
        assert len(masks) == 2
        assert masks.sum(dim=(1, 2)).tolist() == [6 * 6, 10 * 10]  # no 20x20 "box" mask
        assert counted(out) == {"data/dropped_degenerate_polygon": 3}


def test_polygon_with_an_odd_number_of_coordinates_is_an_error(tmp_path: Path) -> None:
    record = instance_dict(gray_image(tmp_path / "image.png"), [obj([[1, 1, 9, 1, 9, 9, 1]], id=7)])
    with pytest.raises(ValueError, match=r"polygon of object 7 of .*image.png.*odd number.*\(7\)"):
        instance_mapper()(record)


# Panoptic PNG ids and segments_info


@pytest.fixture()
def coco_panoptic_record(coco_json: dict, tmp_path: Path) -> Dict[str, Any]:
    """The first real COCO sample as a mapper record (contiguous category ids), its PNG copied."""
    annotation = coco_json["annotations"][0]
    contiguous = {c["id"]: i for i, c in enumerate(coco_json["categories"])}
    png = tmp_path / annotation["file_name"]
    shutil.copy(SAMPLES / "coco_panoptic" / "panoptic_examples" / annotation["file_name"], png)
    image = next(i for i in coco_json["images"] if i["id"] == annotation["image_id"])
    segments = [
        dict(s, category_id=contiguous[s["category_id"]]) for s in annotation["segments_info"]
    ]
    return {
        "file_name": str(SAMPLES / "coco_panoptic" / "images" / image["file_name"]),
        "height": image["height"],
        "width": image["width"],
        "pan_seg_file_name": str(png),
        "segments_info": segments,
    }


def test_panoptic_sample_maps(coco_panoptic_record: Dict[str, Any]) -> None:
    for mapper in panoptic_mappers(num_classes=133):
        out = mapper(coco_panoptic_record)
        non_crowd = [s for s in coco_panoptic_record["segments_info"] if not s["iscrowd"]]
        assert len(out["instances"]) == len(non_crowd)


@pytest.mark.parametrize("fault", ["id_not_listed", "listed_segment_absent"])
def test_panoptic_png_and_segments_info_disagreeing_is_an_error(
    fault: str, coco_panoptic_record: Dict[str, Any]
) -> None:
    """A PNG id missing from segments_info is not silently trained as "no object" (and the
    reverse, a listed segment without pixels, is reported too): the json and the PNGs disagree."""
    segments = coco_panoptic_record["segments_info"]
    if fault == "id_not_listed":
        dropped = segments[0]["id"]
        segments, pattern = segments[1:], rf"has segment ids \[{dropped}\] that are not in"
    else:
        extra = {"id": 123456, "category_id": 1, "iscrowd": 0, "isthing": True}
        segments, pattern = segments + [extra], r"lists segment ids \[123456\] that are not in"
    record = dict(coco_panoptic_record, segments_info=segments)
    for mapper in panoptic_mappers(num_classes=133):
        with pytest.raises(ValueError, match=rf"PNG '[^']*\.png' {pattern}"):
            mapper(record)


def test_panoptic_png_ids_are_read_from_the_png_colours(
    coco_panoptic_record: Dict[str, Any],
) -> None:
    png = coco_panoptic_record["pan_seg_file_name"]
    ids = rgb_to_id(read_image(png, "RGB"))
    assert set(np.unique(ids).tolist()) - {0} == {
        s["id"] for s in coco_panoptic_record["segments_info"]
    }


# The test loader of tools/train_net.py


def test_test_loader_maps_as_detectron2_and_names_a_truncated_image(
    make_cfg, coco_panoptic_dataset: str, tmp_path: Path
) -> None:
    """Trainer.build_test_loader maps with the mappers' inference mode: the same inputs as
    detectron2's default DatasetMapper of the official code, and a truncated image is an error
    naming it (detectron2's: "image file is truncated", without the file)."""
    from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog

    from mask2former.engine import Trainer

    cfg = make_cfg("coco_panoptic_lsj", coco_panoptic_dataset)
    cfg.DATALOADER.NUM_WORKERS = 0
    records = DatasetCatalog.get(coco_panoptic_dataset)
    (ours,) = next(iter(Trainer.build_test_loader(cfg, coco_panoptic_dataset)))
    theirs = DatasetMapper(cfg, is_train=False)(records[0])
    assert torch.equal(ours["image"], theirs["image"]) and ours["image"].shape[-2:] == (200, 300)
    # detectron2 also reads the label map into "sem_seg", which no model or evaluator uses at
    # test time (evaluators read the ground truth files)
    assert {k: v for k, v in ours.items() if k != "image"} == {
        k: v for k, v in theirs.items() if k not in ("image", "sem_seg", "pan_seg_file_name")
    }

    name = "test_bad_inputs_truncated_test_image"
    broken = truncated(Path(records[0]["file_name"]), tmp_path)
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [dict(records[0], file_name=broken)])
        MetadataCatalog.get(name).set(evaluator_type="coco_panoptic_seg")
    with pytest.raises(UnreadableFileError, match=f"Cannot decode '{broken}'"):
        next(iter(Trainer.build_test_loader(cfg, name)))
