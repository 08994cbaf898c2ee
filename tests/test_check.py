"""`segcli check` (the label doctor) on a deliberately broken dataset, and train's pre-flight."""

import numpy as np
import pytest
from PIL import Image

from segcli.data.doctor import ERROR, NOTE, diagnose
from segcli.viz import label_image

from helpers import TINY_FCN, run_segcli, write_pair


@pytest.fixture
def broken(tmp_path):
    """images/ + masks/ with one file per problem the doctor knows."""
    root = tmp_path / "broken"
    rng = np.random.default_rng(0)
    for i in range(9):
        write_pair(root / "images", root / "masks", f"f{i}", rng, palette=False)
    (root / "class_names.txt").write_text("background\nbright\nbrighter\n")
    masks, images = root / "masks", root / "images"
    Image.fromarray(np.full((40, 56), 7, np.uint8), "L").save(masks / "f1.png")
    binary = np.zeros((40, 56), np.uint8)
    binary[5:15, 5:15] = 255
    Image.fromarray(binary, "L").save(masks / "f2.png")
    Image.new("RGB", (56, 40)).save(masks / "f3.png")
    Image.fromarray(np.zeros((10, 10), np.uint8), "L").save(masks / "f4.png")
    (images / "f5.jpg").write_bytes(b"garbage")
    Image.fromarray(np.zeros((40, 56), np.uint8), "L").save(masks / "f6.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: 40x56 on screen, mask is 56x40
    Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(images / "f7.jpg", exif=exif)
    scaled = np.zeros((40, 56), np.uint8)
    scaled[:10], scaled[10:20] = 127, 254
    Image.fromarray(scaled, "L").save(masks / "f8.png")
    (root / "train.txt").write_text("\n".join(f"f{i}" for i in range(9)) + "\n")
    (root / "val.txt").write_text("f0\n")
    return root


def test_doctor_finds_every_problem_with_its_fix(broken):
    report = diagnose(str(broken))
    found = {(f.kind, f.path.rsplit("/", 1)[-1]): f for f in report.findings}
    expected = {
        ("out of range", "f1.png"): "--set ignore_index=7",
        ("binary 0/255 mask", "f2.png"): "--set binary=true",
        ("colour mask", "f3.png"): "convert the colours to ids",
        ("size mismatch", "f4.png"): "mask is 10x10 but its image is 56x40",
        ("unreadable file", "f5.jpg"): "cannot decode image",
        ("no labels", "f6.png"): "no pixel of any class",
        ("EXIF rotation", "f7.jpg"): "rotate the mask",
        ("scaled ids", "f8.png"): "divide the masks by 127",
    }
    for key, words in expected.items():
        assert key in found, (key, sorted(found))
        assert words in found[key].detail
    assert found[("no labels", "f6.png")].severity == NOTE
    assert len(report.errors) == 7 and all(f.severity == ERROR for f in report.errors)
    # f0 is in both splits and counted twice; the clean files add up in the class table
    assert report.images == 10 and report.pixels[1] > 0 and report.image_counts[2] >= 2


def test_check_command_prints_findings_and_exits_1(broken, tmp_path):
    # piped, with the COLUMNS that pytest-xdist's workers (and many shells) export: no path folded
    result = run_segcli("check", "--data", broken, cwd=tmp_path, env={"COLUMNS": "80"})
    assert result.returncode == 1, result.stderr
    for words in (
        "binary 0/255 mask",
        "f2.png",
        "class frequency",
        "10 images checked: 7 error(s), 1 note(s)",
    ):
        assert words in result.stdout.replace("\n", " ") or words in result.stdout, words


def test_train_stops_before_the_first_step_with_the_doctors_words(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "bin"
    for i in range(4):
        write_pair(root / "images", root / "masks", f"b{i}", rng, palette=False, num_classes=2)
        mask = np.asarray(Image.open(root / "masks" / f"b{i}.png")) * 255
        Image.fromarray(mask.astype(np.uint8), "L").save(root / "masks" / f"b{i}.png")
    (root / "class_names.txt").write_text("background\nobject\n")
    args = [
        "train",
        "fcn8s",
        "--data",
        root,
        "--iters",
        "1",
        "--img-size",
        "32",
        "--batch-size",
        "2",
        "--workers",
        "0",
        *TINY_FCN,
    ]
    result = run_segcli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "255 is the ignore index" in result.stderr and "--set binary=true" in result.stderr
    assert run_segcli(*args, "--set", "binary=true", cwd=tmp_path).returncode == 0


def test_ignore_pixels_are_not_mistaken_for_scaled_ids(voc_dir):
    """VOC's person (15) with 255 borders: 255 is a multiple of 15 but it is the ignore index."""
    mask = np.zeros((40, 56), np.uint8)
    mask[:5], mask[5:8] = 15, 255
    label_image(mask).save(voc_dir / "SegmentationClass" / "img00.png")
    report = diagnose(str(voc_dir), num_classes=21)
    assert report.errors == [], report.errors
