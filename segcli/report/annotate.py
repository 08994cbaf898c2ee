"""What `segcli infer` writes per image or video frame, for each task, and the video loop.

An annotator predicts through a task (segcli.tasks) and has `frame(rgb) -> rgb` (the annotated
picture, also used for every video frame),
`image(rgb, out_dir, stem) -> written paths` and `finish(out_dir)` (files about all images).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console

from segcli import io, viz
from segcli.data.images import VIDEO_CODECS
from segcli.errors import DataError
from segcli.metrics.coco import detections_to_results
from segcli.progress import shown_on, steps


class SemanticAnnotator:
    """Class maps: `<stem>.png` (palette PNG of class ids) and `<stem>_overlay.jpg`."""

    def __init__(self, task, model, class_names, device):
        self.task, self.model, self.names, self.device = task, model, class_names, device

    def label(self, rgb: np.ndarray) -> np.ndarray:
        return self.task.predict(self.model, [rgb], self.device)[0]

    def frame(self, rgb: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
        label = self.label(rgb) if label is None else label
        names = {i: name for i, name in enumerate(self.names) if i}
        return viz.overlay_with_legend(rgb, label, names)

    def image(self, rgb: np.ndarray, out_dir: Path, stem: str) -> list[Path]:
        label = self.label(rgb)
        viz.save_label_png(out_dir / f"{stem}.png", label)
        viz.save_jpeg(out_dir / f"{stem}_overlay.jpg", self.frame(rgb, label))
        return [out_dir / f"{stem}.png"]

    def finish(self, out_dir: Path) -> None:
        pass


class InstanceAnnotator:
    """Instances: `<stem>_overlay.jpg` (each mask in its own colour, box, class and score),
    `<stem>_splash.jpg` with `splash`, and one COCO results file `results.json` for the images
    (detections scoring at least `score_threshold`, image ids in input order from 1)."""

    def __init__(self, task, model, class_names, category_ids, device, score_threshold, splash):
        self.task, self.model, self.names, self.device = task, model, class_names, device
        self.category_ids = category_ids or tuple(range(1, len(class_names)))
        self.threshold, self.splash = score_threshold, splash
        self.results: list[dict] = []
        self.images = 0

    def detect(self, rgb: np.ndarray) -> dict:
        (found,) = self.task.predict(self.model, [rgb], self.device)
        keep = found["scores"] >= self.threshold
        return {k: v[keep] for k, v in found.items()}

    def picture(self, rgb: np.ndarray, found: dict, splash: bool = False) -> np.ndarray:
        """The overlay of detections `found` on `rgb` (or their colour splash); their masks are
        the task's binary ones."""
        masks = found["masks"][:, 0]
        if splash:
            return viz.colour_splash(rgb, masks)
        return viz.draw_instances(
            rgb, masks, found["boxes"], found["labels"], self.names, found["scores"]
        )

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        return self.picture(rgb, self.detect(rgb), self.splash)

    def image(self, rgb: np.ndarray, out_dir: Path, stem: str) -> list[Path]:
        found = self.detect(rgb)
        viz.save_jpeg(out_dir / f"{stem}_overlay.jpg", self.picture(rgb, found))
        if self.splash:
            viz.save_jpeg(out_dir / f"{stem}_splash.jpg", self.picture(rgb, found, splash=True))
        self.images += 1
        for result in detections_to_results(found, self.images, self.category_ids):
            self.results.append({**result, "file_name": stem})
        return [out_dir / f"{stem}_overlay.jpg"]

    def finish(self, out_dir: Path) -> None:
        io.write_json(out_dir / "results.json", self.results, indent=None)


def annotate_video(path: Path, out_path: Path, annotate, console: Console) -> Path:
    """Read `path` frame by frame (OpenCV), write each `annotate(rgb)` to `out_path` at the
    same frame rate and size, with a progress bar; the file appears only when complete."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: cannot open the video (unknown codec or not a video)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # 0 when unknown: no bar
    writer = None
    try:
        with io.atomic_path(out_path) as tmp, shown_on(console), steps(path.name, total) as bar:
            ok, bgr = capture.read()
            if not ok:
                raise DataError(f"{path}: no frame could be read from the video")
            writer = _writer(tmp, fps, bgr.shape[1], bgr.shape[0])
            while ok:
                rgb = annotate(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                bar.advance()
                ok, bgr = capture.read()
            writer.release()  # finishes the container before the file is moved into place
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return out_path


def _writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[path.suffix.lower()])
    writer = cv2.VideoWriter(os.fspath(path), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot write this video format here")
    return writer
