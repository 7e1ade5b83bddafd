"""The web demo end to end in a real browser: Debian's headless Chromium, driven by Selenium,
uploads a photo to demo/web_demo.py (a tiny random-weight model on a free port), runs panoptic and
semantic segmentation, and reads the segment list, the overlay and the download links; the page's
screenshot is saved to output/web_demo_screenshot.png."""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from PIL import Image

import mask2former  # noqa: F401
from mask2former.engine import build_config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests/fixtures/official_tiny/config_full.yaml"
PHOTO = sorted((REPO / "tests/data/samples/coco_panoptic/images").glob("*.jpg"))[0]
SCREENSHOT = REPO / "output" / "web_demo_screenshot.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1100",
]
# A small, fast model: the fixture-sized R50, 256-pixel test size, every confident query kept.
OPTS = [
    "INPUT.MIN_SIZE_TEST",
    "256",
    "INPUT.MAX_SIZE_TEST",
    "512",
    "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD",
    "0.0",
]


def _missing_requirements() -> str:
    missing = [m for m in ("gradio", "selenium") if importlib.util.find_spec(m) is None]
    missing += [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    return ", ".join(missing)


pytestmark = pytest.mark.skipif(
    bool(_missing_requirements()),
    reason=f"web demo browser test needs {_missing_requirements()} (installed by scripts/test.sh)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_model(build_config(str(CONFIG), ["MODEL.DEVICE", "cpu"]))
    with torch.no_grad():  # random weights everywhere, for varied segments
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    out = tmp_path_factory.mktemp("web_demo")
    DetectionCheckpointer(model, save_dir=str(out)).save("model")
    return out / "model.pth"


@pytest.fixture(scope="module")
def server(weights: Path):
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(REPO))
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    cmd = [
        sys.executable,
        str(REPO / "demo/web_demo.py"),
        "--config-file",
        str(CONFIG),
        "--port",
        str(port),
        "MODEL.WEIGHTS",
        str(weights),
        *OPTS,
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    pytest.fail(f"web demo did not start:\n{log.read()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _expected_segments(weights: Path, task: str) -> list:
    """The demo's rows for the photo, computed in this process; their (id, class) pairs are
    checked against the model's own prediction and the dataset's label names."""
    sys.path.insert(0, str(REPO / "demo"))
    try:
        import web_demo
    finally:
        sys.path.remove(str(REPO / "demo"))
    cfg = build_config(str(CONFIG), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(weights), *OPTS])
    demo = web_demo.WebDemo(cfg, 0.5, tempfile.mkdtemp())
    image = np.asarray(Image.open(PHOTO).convert("RGB"))
    _, rows, _ = demo.segment(image, task)
    (prediction,) = demo.predictor([np.ascontiguousarray(image[:, :, ::-1])])
    names = MetadataCatalog.get(cfg.DATASETS.TEST[0]).stuff_classes
    if task == "panoptic":
        reference = [[s["id"], names[s["category_id"]]] for s in prediction["panoptic_seg"][1]]
    else:
        classes = np.unique(prediction["sem_seg"].argmax(0).numpy())
        reference = [[i + 1, names[c]] for i, c in enumerate(classes)]
    assert [row[:2] for row in rows] == reference
    return rows


def _table_rows(driver) -> list:
    """The rendered rows of the segment table (a virtual list: the visible ones), as cell texts."""
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#segments [role=row].virtual-row")
    return [[c.text for c in r.find_elements(By.CSS_SELECTOR, "[role=gridcell]")] for r in rows]


def _downloads(driver) -> dict:
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, "#downloads a[download]")
    return {a.get_attribute("download"): a.get_attribute("href") for a in links}


def _run(driver, task: str, previous: list) -> list:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.XPATH, f"//*[@id='task']//label[normalize-space()='{task}']").click()
    driver.find_element(By.CSS_SELECTOR, "#run-button").click()
    WebDriverWait(driver, 180).until(lambda d: _table_rows(d) and _table_rows(d) != previous)
    return _table_rows(driver)


def _check(driver, rows: list, expected: list, task: str) -> None:
    """Visible rows are the first expected ones; the JSON behind the download link is complete."""
    assert 1 <= len(rows) <= len(expected)
    for row, ref in zip(rows, expected):
        assert [int(row[0]), row[1]] == ref[:2] and float(row[2]) == pytest.approx(ref[2]), row
    links = _downloads(driver)
    assert sorted(links) == ["overlay.png", "segments.json", "segments.png"], links
    data = json.loads(urllib.request.urlopen(links["segments.json"], timeout=30).read())
    assert data["task"] == task
    assert [[s["id"], s["class"]] for s in data["segments"]] == [r[:2] for r in expected]


def test_upload_segment_and_read_the_results_in_a_browser(server, browser, weights) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 180)
    browser.get(server)
    upload = wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image input[type=file]")
    )[0]
    upload.send_keys(str(PHOTO))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image img"))

    panoptic_rows = _run(browser, "panoptic", previous=[])
    _check(browser, panoptic_rows, _expected_segments(weights, "panoptic"), "panoptic")
    overlay = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#overlay img"))[0]
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", overlay) > 0)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    print(f"\nweb demo screenshot: {SCREENSHOT}")

    semantic_rows = _run(browser, "semantic", previous=panoptic_rows)
    _check(browser, semantic_rows, _expected_segments(weights, "semantic"), "semantic")
