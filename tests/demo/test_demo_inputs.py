"""The demo's inputs: expanding --input, a bounded read-ahead, and where outputs go."""

import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from demo_helpers import load_demo_module

input_stream = load_demo_module("input_stream")
result_writer = load_demo_module("result_writer")


def test_list_inputs_expands_folders_and_patterns_and_keeps_missing_files(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.PNG", "notes.txt", "c.jpeg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/d.jpg").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    inputs = input_stream.list_inputs(
        [str(tmp_path), str(tmp_path / "*.jp*g"), str(tmp_path / "gone.jpg")]
        + [str(tmp_path / "none*.png"), str(empty)]
    )
    names = [Path(p).name for p in inputs.paths]
    # The folder (images only, sorted, not recursive), the pattern's new match, the missing
    # file (kept: reading it reports it); each file once.
    assert names == ["a.PNG", "b.jpg", "c.jpeg", "gone.jpg"]
    assert inputs.unmatched == [
        (str(tmp_path / "none*.png"), "pattern matches no file"),
        (str(empty), "folder has no image files"),
    ]


def test_read_ahead_is_bounded_and_in_order() -> None:
    taken: List[int] = []
    outstanding: List[int] = []
    consumed = 0

    def source() -> Iterator[int]:
        for i in range(20):
            taken.append(i)
            outstanding.append(len(taken) - consumed)
            yield i

    out = []
    for item in input_stream.read_ahead(source(), depth=3):
        time.sleep(0.002)  # a slow consumer: the producer runs ahead as far as it may
        out.append(item)
        consumed += 1
    assert out == list(range(20))
    # Never more than 3 waiting + the one the consumer holds; more than 1: it does read ahead.
    assert 2 <= max(outstanding) <= 3 + 1


def test_read_ahead_raises_the_source_error_and_stops_its_thread() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    stream = input_stream.read_ahead(failing(), depth=2)
    assert next(stream) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(stream)

    before = threading.active_count()
    endless = input_stream.read_ahead(iter(int, 1), depth=2)  # never ends
    next(endless)
    endless.close()
    assert threading.active_count() <= before
    with pytest.raises(ValueError, match="depth"):
        next(input_stream.read_ahead([], depth=0))


def test_outputs_named_after_inputs_and_collisions_refused(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    targets = result_writer.picture_paths(["x/a.jpg", "y/b.gif"], out, save_json=False)
    # GIF cannot be written by OpenCV: a PNG of the same stem.
    assert targets == {"x/a.jpg": f"{out}/a.jpg", "y/b.gif": f"{out}/b.png"}
    assert result_writer.picture_paths(["x/a.jpg"], out + "/vis.jpg", False) == {
        "x/a.jpg": out + "/vis.jpg"
    }
    with pytest.raises(ValueError, match="x/a.jpg' and 'y/a.jpg' would both write"):
        result_writer.picture_paths(["x/a.jpg", "y/a.jpg"], out, save_json=False)
    # The results files of a.jpg and a.png would share the name a.png.
    result_writer.picture_paths(["a.jpg", "a.png"], out, save_json=False)
    with pytest.raises(ValueError, match="would both write"):
        result_writer.picture_paths(["a.jpg", "a.png"], out, save_json=True)


def test_coco_image_ids() -> None:
    assert result_writer.coco_image_ids(["d/000000000139.jpg", "e/285.png"]) == {
        "d/000000000139.jpg": 139,
        "e/285.png": 285,
    }
    assert result_writer.coco_image_ids(["d/139.jpg", "e/cat.jpg"]) == {
        "d/139.jpg": "139.jpg",
        "e/cat.jpg": "cat.jpg",
    }
