"""`segcli infer` on videos (written frame by frame with OpenCV) and the colour splash."""

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from segcli import viz
from segcli.config import resolve_config
from segcli.engine import checkpoint
from segcli.recipe import get_recipe
from segcli.tasks import for_recipe

from helpers import TINY_RCNN, settings

SMALL = {
    "mask_rcnn": settings({**TINY_RCNN, "min_size": 48, "max_size": 64}),
    "fcn8s": ["width=0.125", "fc_channels=32"],
}
NAMES = ("background", "square", "circle", "triangle")


def untrained_checkpoint(path, name: str):
    """A checkpoint as training writes it, of an untrained small model (infer only needs the
    recipe, config, class names and weights)."""
    recipe = get_recipe(name)
    cfg = resolve_config(recipe, {}, SMALL[name])
    torch.manual_seed(0)
    model = recipe.build_model(len(NAMES), **cfg.model)
    if name == "fcn8s":  # zero-initialised scores predict background: make it see circles
        torch.nn.init.constant_(model.score_pool3.bias[2:3], 5.0)
    checkpoint.save(path, {"model": model.state_dict(), "recipe": recipe.name,
                           "task": recipe.task, "config": cfg.to_dict(),
                           "class_names": list(NAMES)})  # fmt: skip
    return path


def write_video(path, frames: int = 5, size=(48, 64)):
    """Moving squares on a gradient, as OpenCV writes them."""
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, 10.0, (size[1], size[0]))
    for t in range(frames):
        frame = np.tile(
            np.linspace(0, 120, size[1], dtype=np.uint8)[None, :, None], (size[0], 1, 3)
        )
        frame[10:26, 5 + 4 * t : 21 + 4 * t] = (40, 200, 250)
        writer.write(frame)
    writer.release()
    return path


def read_video(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    ok, frame = capture.read()
    while ok:
        frames.append(frame)
        ok, frame = capture.read()
    capture.release()
    return frames


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "suffix", "flags", "output"), [
    ("mask_rcnn", ".mp4", ["--score-threshold", "0"], "clip_overlay.mp4"),
    ("mask_rcnn", ".avi", ["--splash"], "clip_splash.avi"),
    ("fcn8s", ".mp4", [], "clip_overlay.mp4"),
])  # fmt: skip
def test_video_is_annotated_frame_by_frame(cli, in_tmp, recipe, suffix, flags, output):
    ckpt = untrained_checkpoint(in_tmp / "model.pt", recipe)
    video = write_video(in_tmp / f"clip{suffix}")
    result = cli("infer", ckpt, video, "--out", "out", *flags)
    assert result.exit_code == 0, result.output
    frames = read_video(in_tmp / "out" / output)
    assert len(frames) == len(read_video(video)) == 5
    assert frames[0].shape == (48, 64, 3)
    assert not list((in_tmp / "out").glob(".*"))  # no temporary file left behind
    threshold = 0.0 if "--score-threshold" in flags else None  # None: infer's default
    annotator = same_annotator(ckpt, threshold, "--splash" in flags)
    for written, original in zip(frames, read_video(video)):
        rgb = cv2.cvtColor(original, cv2.COLOR_BGR2RGB)
        expected, written = annotator.frame(rgb), cv2.cvtColor(written, cv2.COLOR_BGR2RGB)
        # blurred, as the lossy codecs keep coarse structure but smear lines and text
        assert mean_difference(expected, rgb) > 3, "the annotation left the frame as it was"
        to_expected, to_input = mean_difference(written, expected), mean_difference(written, rgb)
        assert to_expected < 0.4 * to_input, (to_expected, to_input)
        if "--splash" in flags:  # strongly coloured input outside every detection turns grey
            (found,) = annotator.task.predict(annotator.model, [rgb], torch.device("cpu"))
            inside = (
                found["masks"][found["scores"] >= (0.5 if threshold is None else threshold), 0]
                >= 0.5
            ).any(0)
            near = cv2.dilate(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            coloured = (np.ptp(rgb.astype(int), axis=2) > 100) & ~near
            assert coloured.sum() > 50
            assert np.ptp(written.astype(int), axis=2)[coloured].mean() < 20


def same_annotator(ckpt, score_threshold: float | None, splash: bool):
    """An annotator of the checkpoint as `segcli infer` builds it (for the expected frames)."""
    from segcli.commands.infer import _annotator

    device = torch.device("cpu")
    model, recipe, _, names, payload = checkpoint.restore_model(ckpt, device)
    return _annotator(recipe, model, names, payload, device, None, score_threshold, splash)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    blur = [cv2.GaussianBlur(x.astype(np.float32), (0, 0), 2) for x in (a, b)]
    return float(np.abs(blur[0] - blur[1]).mean())


def test_unreadable_video_is_one_line(cli, in_tmp):
    ckpt = untrained_checkpoint(in_tmp / "model.pt", "mask_rcnn")
    (in_tmp / "broken.mp4").write_bytes(b"not a video at all")
    result = cli("infer", ckpt, in_tmp / "broken.mp4", "--out", "out")
    assert result.exit_code == 2
    assert "broken.mp4: cannot open the video" in result.output
    assert not (in_tmp / "out" / "broken_overlay.mp4").exists()


def test_colour_splash_is_grey_outside_the_masks():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    masks = np.zeros((2, 20, 30), bool)
    masks[0, 2:8, 3:9] = True
    masks[1, 10:18, 20:28] = True
    splash = viz.colour_splash(image, masks)
    inside = masks.any(0)
    assert np.array_equal(splash[inside], image[inside])
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(splash[~inside], np.repeat(grey[~inside][:, None], 3, axis=1))
    assert np.array_equal(viz.colour_splash(image, masks[:0]), np.dstack([grey] * 3))


def test_splash_image_through_infer_keeps_colour_only_in_detections(cli, in_tmp):
    """The untrained model's three best detections decide where colour stays (the whole image
    is strongly coloured); the JPEG is compared with a tolerance for its compression."""
    ckpt = untrained_checkpoint(in_tmp / "model.pt", "mask_rcnn")
    rng = np.random.default_rng(1)
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :, 0], image[:, :, 2] = 230, 30  # strongly coloured: grey differs a lot
    image[8:30, 10:40] = rng.integers(0, 255, 3)
    Image.fromarray(image).save(in_tmp / "photo.png")
    model = checkpoint.restore_model(ckpt, torch.device("cpu"))[0]
    predicted = for_recipe(get_recipe("mask_rcnn")).predict(model, [image], torch.device("cpu"))
    third = sorted(predicted[0]["scores"])[-3]
    result = cli("infer", ckpt, in_tmp / "photo.png", "--out", "out", "--splash",
                 "--score-threshold", str(third))  # fmt: skip
    assert result.exit_code == 0, result.output
    splash = np.asarray(Image.open(in_tmp / "out" / "photo_splash.jpg")).astype(int)
    found = json.loads((in_tmp / "out" / "results.json").read_text())
    assert len(found) == 3
    inside = np.zeros((48, 64), bool)
    for r in found:
        inside |= mask_utils.decode(r["segmentation"]).astype(bool)
    spread = splash.max(2) - splash.min(2)  # 0 for grey pixels
    near = cv2.dilate(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert (~near).any() and spread[~near].mean() < 3  # JPEG chroma bleeds over edges a bit
    assert inside.any() and spread[inside].mean() > 30  # colours kept in the detections
