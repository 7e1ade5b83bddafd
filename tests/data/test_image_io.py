"""Strict image reading (training, evaluation and the demo): upright by EXIF, every pixel
decoded, bad files named, 16-bit images converted by their range."""

import io
from pathlib import Path

import numpy as np
import pytest
from detectron2.data.detection_utils import read_image as detectron2_read_image
from PIL import Image, ImageFile

from mask2former.data.bad_samples import MissingFileError, UnreadableFileError
from mask2former.data.image_io import read_image


def upright_image() -> np.ndarray:
    """[24, 40, 3] RGB: red top half, blue bottom half, a green left quarter."""
    image = np.zeros((24, 40, 3), np.uint8)
    image[:12, :, 0] = 255
    image[12:, :, 2] = 255
    image[:, :10] = (0, 255, 0)
    return image


def jpeg_bytes(image: np.ndarray, **save_args) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=95, **save_args)
    return out.getvalue()


def test_exif_orientation_6_comes_out_upright(tmp_path: Path) -> None:
    upright = upright_image()
    # Orientation 6: the stored pixels are the scene turned 90 degrees counter-clockwise; a
    # viewer turns them 90 degrees clockwise.
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # [40, 24, 3]
    exif = Image.Exif()
    exif[274] = 6
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg_bytes(stored, exif=exif))

    rgb = read_image(str(path), "RGB")
    assert rgb.shape == upright.shape
    assert np.abs(rgb.astype(int) - upright).mean() < 8
    np.testing.assert_array_equal(read_image(str(path), "BGR"), rgb[:, :, ::-1])
    # As detectron2's read_image (what training uses) sees it.
    np.testing.assert_array_equal(rgb, detectron2_read_image(str(path), "RGB"))


def test_truncated_jpeg_is_an_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = jpeg_bytes(upright_image())
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    # Some libraries turn PIL's truncated-image tolerance on at import; it must not matter.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(UnreadableFileError, match=r"truncated\.jpg' \(corrupt or truncated file"):
        read_image(str(path))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the user's setting is left as it was
    # Only the last two bytes (the end-of-image marker) missing.
    path.write_bytes(data[:-2])
    with pytest.raises(UnreadableFileError, match="truncated"):
        read_image(str(path))


def test_corrupt_png_is_an_error(tmp_path: Path) -> None:
    gradient = np.broadcast_to(
        np.linspace(0, 255, 320).astype(np.uint8)[None, :, None], (240, 320, 3)
    )
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(gradient)).save(out, "PNG")
    data = bytearray(out.getvalue())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the compressed pixels
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    lazy = Image.open(path)
    lazy.load()  # PIL alone decodes it to wrong pixels without a word
    assert not np.array_equal(np.asarray(lazy), gradient)
    with pytest.raises(UnreadableFileError, match=r"corrupt\.png' \(corrupt or truncated file"):
        read_image(str(path))


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("notes.jpg", b"this is a text file, not a picture\n", "not an image PIL can read"),
        ("empty.png", b"", "empty file"),
    ],
)
def test_not_an_image(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableFileError, match=f"{name}': {reason}"):
        read_image(str(path))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="File not found: .*gone.jpg"):
        read_image(str(tmp_path / "gone.jpg"))
    with pytest.raises(UnreadableFileError, match="is a directory"):
        read_image(str(tmp_path))


def save(tmp_path: Path, name: str, image: Image.Image, **args) -> str:
    path = tmp_path / name
    image.save(path, **args)
    return str(path)


def test_grayscale_rgba_and_palette_become_rgb(tmp_path: Path) -> None:
    gray = np.arange(24 * 40, dtype=np.uint8).reshape(24, 40)
    rgb = read_image(save(tmp_path, "gray.png", Image.fromarray(gray)), "RGB")
    assert rgb.shape == (24, 40, 3)
    assert all(np.array_equal(rgb[:, :, c], gray) for c in range(3))

    rgba = np.dstack([upright_image(), np.full((24, 40), 7, np.uint8)])
    rgb = read_image(save(tmp_path, "rgba.png", Image.fromarray(rgba, "RGBA")), "RGB")
    np.testing.assert_array_equal(rgb, upright_image())  # alpha dropped, as detectron2

    palette = Image.fromarray(upright_image()).convert("P")
    rgb = read_image(save(tmp_path, "palette.png", palette), "RGB")
    np.testing.assert_array_equal(rgb, upright_image())


def test_16_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], np.uint16)  # -> 0, 1, 128, 255
    path = save(tmp_path, "deep.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")  # a 16-bit PNG
    rgb = read_image(path, "RGB")
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])

    # Float pixels have no agreed range: refused, naming the file, rather than guessed.
    floats = np.array([[0.0, 0.5, 1.0]], np.float32)
    with pytest.raises(UnreadableFileError, match=r"float\.tif.*float pixels"):
        read_image(save(tmp_path, "float.tif", Image.fromarray(floats, "F")), "RGB")


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cyan = Image.new("CMYK", (16, 8), (255, 0, 0, 0))
    path = save(tmp_path, "cmyk.jpg", cyan, quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = read_image(path, "RGB")
    assert rgb.shape == (8, 16, 3)
    np.testing.assert_allclose(rgb.reshape(-1, 3).mean(0), [0, 255, 255], atol=4)
