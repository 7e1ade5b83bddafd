"""Mask2Former in the browser: a local Gradio page (optional extra ``pip install -e .[demo]``).

    python demo/web_demo.py --config-file configs/coco/panoptic-segmentation/swin/\
maskformer2_swin_tiny_bs16_50ep.yaml [--port 7860] MODEL.WEIGHTS model_final.pkl

Upload an image (or pick an example), choose panoptic / instance / semantic, and get the overlay, a
list of segments (class, score, area) and the results to download: the overlay (PNG), the segment
id map (16-bit PNG; 0 = nothing) and the segments (JSON). Scores: instances carry the model's score;
a panoptic or semantic segment is given the mean semantic probability of its class over its pixels.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from detectron2.utils.logger import setup_logger  # noqa: E402
from predictor import BatchPredictor, draw_prediction, metadata_for  # noqa: E402

import mask2former  # noqa: E402,F401  (registers the model and datasets)
from mask2former.engine import build_config  # noqa: E402

logger = logging.getLogger("mask2former.web_demo")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(str(p) for p in (REPO / "tests/data/samples/coco_panoptic/images").glob("*.jpg"))
TASKS = ("panoptic", "instance", "semantic")
COLUMNS = ["id", "class", "score", "area %"]


class WebDemo:
    """The model side of the page: ``segment(image_rgb, task)`` -> overlay, rows, files."""

    def __init__(self, cfg: Any, confidence_threshold: float, output_dir: str) -> None:
        self.predictor = BatchPredictor(cfg, batch_size=1)
        self.metadata = metadata_for(cfg)
        self.confidence_threshold = confidence_threshold
        self.output_dir = output_dir
        test = cfg.MODEL.MASK_FORMER.TEST
        flags = {
            "panoptic": test.PANOPTIC_ON,
            "instance": test.INSTANCE_ON,
            "semantic": test.SEMANTIC_ON,
        }
        self.tasks = [t for t in TASKS if flags[t]]

    def _class_name(self, label: int) -> str:
        """Label names: ``stuff_classes`` (all classes of panoptic/semantic datasets), else
        ``thing_classes`` (instance datasets); contiguous ids index both."""
        names = getattr(self.metadata, "stuff_classes", None) or getattr(
            self.metadata, "thing_classes", None
        )
        return names[label] if names and label < len(names) else f"class {label}"

    def _segments(self, prediction: Dict, task: str) -> Tuple[np.ndarray, List[Dict], Dict]:
        """(id map [H, W], segment dicts, the prediction restricted to ``task``)."""
        if task == "instance":
            instances = prediction["instances"].to("cpu")
            instances = instances[instances.scores >= self.confidence_threshold]
            instances = instances[instances.scores.argsort(descending=True)]
            ids = np.zeros(instances.image_size, dtype=np.int32)
            segments = []
            for i in range(len(instances)):
                mask = instances.pred_masks[i].numpy() > 0.5
                ids[mask & (ids == 0)] = i + 1
                label = int(instances.pred_classes[i])
                segments.append(
                    {
                        "id": i + 1,
                        "category_id": label,
                        "class": self._class_name(label),
                        "score": float(instances.scores[i]),
                        "area": int(mask.sum()),
                    }
                )
            return ids, segments, {"instances": instances}
        sem_seg = prediction["sem_seg"].cpu()  # [K, H, W] scores
        if task == "panoptic":
            panoptic_seg, info = prediction["panoptic_seg"]
            ids = panoptic_seg.cpu().numpy().astype(np.int32)
            labels = [(s["id"], s["category_id"]) for s in info]
            restricted = {"panoptic_seg": (panoptic_seg.cpu(), info)}
        else:
            classes = sem_seg.argmax(0).numpy()
            present = np.unique(classes)
            ids = np.zeros(classes.shape, dtype=np.int32)
            for i, c in enumerate(present):
                ids[classes == c] = i + 1
            labels = [(i + 1, int(c)) for i, c in enumerate(present)]
            restricted = {"sem_seg": sem_seg}
        segments = []
        for seg_id, label in labels:
            mask = ids == seg_id
            score = float(sem_seg[label].numpy()[mask].mean()) if mask.any() else 0.0
            segments.append(
                {
                    "id": seg_id,
                    "category_id": int(label),
                    "class": self._class_name(label),
                    "score": score,
                    "area": int(mask.sum()),
                }
            )
        return ids, segments, restricted

    def segment(self, image_rgb: Optional[np.ndarray], task: str) -> Tuple[Any, List, List[str]]:
        """Runs the model on an RGB uint8 image; returns (overlay, table rows, file paths)."""
        if image_rgb is None:
            raise ValueError("upload an image or pick an example first")
        if task not in self.tasks:
            raise ValueError(f"task {task!r} is not enabled by the config (enabled: {self.tasks})")
        image_bgr = np.ascontiguousarray(image_rgb[:, :, ::-1])
        (prediction,) = self.predictor([image_bgr])
        ids, segments, restricted = self._segments(prediction, task)
        overlay = draw_prediction(image_bgr, restricted, self.metadata)  # RGB uint8
        out = tempfile.mkdtemp(prefix="m2f_web_", dir=self.output_dir)
        paths = [os.path.join(out, n) for n in ("overlay.png", "segments.png", "segments.json")]
        Image.fromarray(overlay).save(paths[0])
        Image.fromarray(ids.astype(np.uint16)).save(paths[1])
        with open(paths[2], "w") as f:
            json.dump({"task": task, "segments": segments}, f, indent=1)
        total = float(ids.size)
        rows = [
            [s["id"], s["class"], round(s["score"], 3), round(100 * s["area"] / total, 2)]
            for s in segments
        ]
        return overlay, rows, paths


def build_page(demo: WebDemo) -> Any:
    import gradio as gr

    def run(image: Optional[np.ndarray], task: str):
        try:
            return demo.segment(image, task)
        except ValueError as e:
            raise gr.Error(str(e)) from e

    with gr.Blocks(title="Mask2Former", analytics_enabled=False) as page:
        gr.Markdown("# Mask2Former\nUpload an image or pick an example, choose a task, segment.")
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    type="numpy", sources=["upload"], label="Image", elem_id="input-image"
                )
                task = gr.Radio(demo.tasks, value=demo.tasks[0], label="Task", elem_id="task")
                button = gr.Button("Segment", variant="primary", elem_id="run-button")
                if EXAMPLES:
                    gr.Examples(EXAMPLES, inputs=image, label="Examples")
            with gr.Column():
                overlay = gr.Image(
                    type="numpy", label="Result", interactive=False, elem_id="overlay"
                )
                table = gr.Dataframe(
                    headers=COLUMNS, label="Segments", interactive=False, elem_id="segments"
                )
                files = gr.File(
                    label="Download (overlay PNG, id map PNG, segments JSON)",
                    file_count="multiple",
                    elem_id="downloads",
                )
        button.click(run, inputs=[image, task], outputs=[overlay, table, files])
    return page


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--confidence-threshold", type=float, default=0.5, help="minimum score of a listed instance"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="mask2former")
    cfg = build_config(args.config_file, ["MODEL.DEVICE", "cpu", *args.opts])
    output_dir = tempfile.mkdtemp(prefix="m2f_web_demo_")
    demo = WebDemo(cfg, args.confidence_threshold, output_dir)
    page = build_page(demo)
    logger.info("Serving on http://%s:%d", args.host, args.port)
    page.queue().launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        ssr_mode=False,
        allowed_paths=[output_dir],
        show_error=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
