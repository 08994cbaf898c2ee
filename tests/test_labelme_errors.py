"""convert-labelme on bad input and under faults: one line and exit 2 naming the file, no
partial output, --overwrite and --skip-invalid, write errors, SIGTERM, absurd shapes."""

import errno
import os
import signal
import subprocess
import sys

import pytest
from labelme_files import H, convert, labelme_file, ok, png, shape, square
from PIL import Image

from segcli import io as segcli_io
from segcli.data.images import read_image
from segcli.data.labelme.paint import MAX_INSTANCES
from segcli.data.labelme.parse import ShapeProblem
from segcli.data.labelme.plan import make_plan
from segcli.data.labelme.worker import FileCheck
from segcli.errors import DataError

from helpers import run_segcli


def bad_json(folder):
    labelme_file(folder, "bad", [])
    (folder / "bad.json").write_text('{"shapes": [')


def bad_type(folder):
    labelme_file(folder, "bad", [shape("cat", [[1, 1], [5, 5]], "cuboid")])


def two_point_polygon(folder):
    labelme_file(folder, "bad", [shape("cat", [[1, 1], [5, 5]])])


def missing_image(folder):
    labelme_file(folder, "bad", [square("cat", 1, 1)])
    (folder / "bad.jpg").unlink()


def unknown_label(folder):
    labelme_file(folder, "bad", [square("horse", 1, 1)])


def wrong_size(folder):
    labelme_file(folder, "bad", [square("cat", 1, 1)], imageHeight=H + 1)


def huge_integer(folder):  # float() of it overflows
    labelme_file(folder, "bad", [shape("cat", [[10**400, 1], [5, 5], [1, 5]])])


def far_away(folder):  # Pillow would try to draw it
    labelme_file(folder, "bad", [shape("cat", [[1, 1], [1e12, 5], [1, 5]])])


@pytest.mark.parametrize(
    "make, message",
    [
        (bad_json, "malformed JSON"),
        (bad_type, "unsupported shape type 'cuboid'"),
        (two_point_polygon, "polygon with 2 points (needs at least 3)"),
        (missing_image, "image not found"),
        (unknown_label, "label 'horse' is not in labels.txt"),
        (wrong_size, "the image is 56x40 but the JSON says imageWidth x imageHeight = 56x41"),
        (huge_integer, "shape 0 ('cat'): points hold a number too large for a coordinate"),
        (far_away, "shape 0 ('cat'): point [1e+12, 5] lies far outside the 56x40 image"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(cli, in_tmp, make, message):
    labelme_file(in_tmp / "lm", "good", [square("cat", 1, 1)])
    make(in_tmp / "lm")
    (in_tmp / "labels.txt").write_text("cat\n")
    result = convert(cli, "lm", "--labels", "labels.txt")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(in_tmp / "lm" / "bad.json") in lines[0] and message in lines[0]
    assert sorted(p.name for p in in_tmp.iterdir()) == ["labels.txt", "lm"]


def test_skip_invalid_converts_the_rest_and_reports(cli, in_tmp):
    labelme_file(in_tmp / "lm", "good", [square("cat", 1, 1)])
    labelme_file(in_tmp / "lm", "half", [shape("cat", [[1, 1]]), square("cat", 20, 1)])
    bad_json(in_tmp / "lm")
    result = ok(convert(cli, "lm", "--skip-invalid"))
    assert "skipped: 1 file(s), 1 shape(s)" in result.output
    assert "malformed JSON" in result.output and "polygon with 1 points" in result.output
    assert sorted(p.name for p in (in_tmp / "out" / "JPEGImages").iterdir()) == [
        "good.jpg",
        "half.jpg",
    ]
    assert png("out/SegmentationClass/half.png")[5, 25] == 1


def test_existing_output_needs_overwrite_and_survives_a_failure(cli, in_tmp):
    labelme_file(in_tmp / "lm", "a", [square("cat", 1, 1)])
    (in_tmp / "out").mkdir()
    (in_tmp / "out" / "keep.txt").write_text("old")
    result = convert(cli, "lm")
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.stderr
    unknown_label(in_tmp / "lm")
    (in_tmp / "labels.txt").write_text("cat\n")
    assert convert(cli, "lm", "--labels", "labels.txt", "--overwrite").exit_code == 2
    assert (in_tmp / "out" / "keep.txt").read_text() == "old"
    ok(convert(cli, "lm", "--overwrite"))
    assert not (in_tmp / "out" / "keep.txt").exists()
    assert (in_tmp / "out" / "SegmentationClass" / "bad.png").is_file()
    assert sorted(p.name for p in in_tmp.iterdir()) == ["labels.txt", "lm", "out"]


def test_failure_while_writing_leaves_no_output(cli, in_tmp, monkeypatch):
    from segcli.data.labelme import convert as engine
    from segcli.data.labelme import worker
    from segcli.errors import DataError

    for i in range(3):
        labelme_file(in_tmp / "lm", f"f{i}", [square("cat", 1, 1)])

    def fail_on_last(job):
        if job.path.stem == "f2":
            raise DataError(f"{job.path}: disk full")
        return worker.convert_file(job)

    monkeypatch.setattr(engine, "convert_file", fail_on_last)
    assert convert(cli, "lm").exit_code == 2
    assert sorted(p.name for p in in_tmp.iterdir()) == ["lm"]

    # In a worker process: a file that vanishes between the passes. The pool must stop
    # (pending files cancelled, running ones awaited) without hanging.
    monkeypatch.setattr(engine, "convert_file", worker.convert_file)
    make_plan = engine.make_plan

    def plan_then_delete(*args):
        plan = make_plan(*args)
        (in_tmp / "lm" / "f1.json").unlink()
        return plan

    monkeypatch.setattr(engine, "make_plan", plan_then_delete)
    result = cli("convert-labelme", "lm", "--out", "out", "--workers", "2", "--noviz")
    assert result.exit_code == 2 and "f1.json: cannot read" in result.stderr
    assert sorted(p.name for p in in_tmp.iterdir()) == ["lm"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EEXIST])
def test_write_error_with_overwrite_keeps_the_old_output(cli, in_tmp, monkeypatch, code):
    from segcli import viz

    for stem in ("a", "b"):
        labelme_file(in_tmp / "lm", stem, [square("cat", 1, 1)])
    (in_tmp / "out").mkdir()
    (in_tmp / "out" / "keep.txt").write_text("old")

    def fail(path, label):  # a full disk, or any other OSError: not "appeared meanwhile"
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(viz, "save_label_png", fail)
    result = convert(cli, "lm", "--overwrite")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {in_tmp / 'out'}: cannot write ({os.strerror(code)})"
    assert (in_tmp / "out" / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["lm", "out"]  # no staging folder


def test_unwritable_output_is_refused_before_the_check_pass(cli, in_tmp, monkeypatch):
    labelme_file(in_tmp / "lm", "a", [square("cat", 1, 1)])
    (in_tmp / "file").write_text("")
    result = convert(cli, "lm", out="file/out")
    assert result.exit_code == 2 and f"{in_tmp / 'file'} is not a folder" in result.stderr
    bad_json(in_tmp / "lm")  # would be the first error if the check pass ran first
    monkeypatch.setattr(segcli_io, "check_writable", lambda f: f"{f}: cannot write there (EROFS)")
    result = convert(cli, "lm")
    assert (
        result.exit_code == 2 and result.stderr == f"error: {in_tmp}: cannot write there (EROFS)\n"
    )


def test_staged_folder_target_exists(tmp_path):
    with pytest.raises(segcli_io.TargetExists), segcli_io.staged_folder(tmp_path / "t"):
        (tmp_path / "t").mkdir()  # another process made it meanwhile
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_decompression_bomb_is_one_line(cli, in_tmp, monkeypatch):
    labelme_file(in_tmp / "lm", "a", [square("cat", 1, 1)])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 56 x 40 is more than twice that
    with pytest.raises(DataError, match="a.jpg: image too large to decode"):
        read_image(in_tmp / "lm" / "a.jpg")
    result = convert(cli, "lm")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert f"lm/a.json: {in_tmp / 'lm' / 'a.jpg'}: image too large to decode" in result.stderr


def test_overwrite_refuses_an_output_holding_source_images(cli, in_tmp):
    labelme_file(in_tmp / "lm", "a", [square("cat", 1, 1)], image_path="../old/a.jpg")
    result = convert(cli, "lm", "--overwrite", out="old")
    assert result.exit_code == 2 and "an image of a.json; --overwrite would delete" in result.stderr
    assert (in_tmp / "old" / "a.jpg").is_file()


def test_too_many_instances_reject_the_file_but_keep_its_shape_problems(tmp_path):
    shapes = tuple((i, "cat", None) for i in range(MAX_INSTANCES + 1))
    check = FileCheck(tmp_path / "a.json", None, shapes, (ShapeProblem(300, "cat", "bad"),))
    plan = make_plan([check], None, "the labels")
    assert plan.files == [] and [p.shape for p in plan.problems] == [None, 300]
    assert "255 instances" in plan.problems[0].reason


def test_hidden_json_bom_labels_no_val_split_and_sigterm_restored(cli, in_tmp):
    for i in range(3):
        labelme_file(in_tmp / "lm", f"f{i}", [square("cat", 1, 1)])
    (in_tmp / "lm" / "._f0.json").write_bytes(b"\x00\x05\x16\x07Mac OS X")  # macOS metadata
    (in_tmp / "labels.txt").write_text("\ufeff__ignore__\n_background_\ncat\n", encoding="utf-8")
    before = signal.getsignal(signal.SIGTERM)
    ok(convert(cli, "lm", "--labels", "labels.txt", "--val-fraction", "0"))  # ._f0: skipped
    assert signal.getsignal(signal.SIGTERM) == before
    sets = in_tmp / "out" / "ImageSets" / "Segmentation"
    assert (sets / "val.txt").read_text() == "" and (sets / "train.txt").read_text().split() == [
        "f0", "f1", "f2"
    ]  # fmt: skip


def test_absurdly_far_shapes_are_found_before_drawing(tmp_path):
    """Pillow's ellipse never returns for a radius over about 670,000 px. A real process with
    a timeout, so a regression fails instead of hanging the suite."""
    labelme_file(tmp_path / "lm", "far", [
        square("cat", 1, 1),
        shape("cat", [[20, 20], [7e5, 20]], "circle"),
        shape("cat", [[20, 20], [2e6, 2e6]], "rectangle"),
    ])  # fmt: skip
    result = run_segcli("convert-labelme", "lm", "--workers", "0", cwd=tmp_path, timeout=120)
    far = tmp_path / "lm" / "far.json"
    assert result.returncode == 2 and result.stderr.startswith(
        f"error: {far}: shape 1 ('cat'): point [700000, 20] lies far outside the 56x40 image "
        "(and 1 more problem(s))"
    ), result.stderr
    result = run_segcli("convert-labelme", "lm", "--workers", "0", "--skip-invalid",
                        cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0 and "skipped: 0 file(s), 2 shape(s)" in result.stdout
    assert png(tmp_path / "lm_converted" / "SegmentationClass" / "far.png").sum() == 11 * 11


SIGTERM_MID_WRITE = """
import os, signal, time
from segcli.data.labelme import worker
from segcli.data.labelme import convert

def convert_then_sigterm(job):
    result = worker.convert_file(job)
    os.kill(os.getpid(), signal.SIGTERM)  # `kill PID` while the staging folder fills
    time.sleep(60)
    return result

convert.convert_file = convert_then_sigterm
convert.convert_labelme("lm", "out", workers=0)
"""


def test_sigterm_while_writing_removes_the_staging_folder(tmp_path):
    for i in range(2):
        labelme_file(tmp_path / "lm", f"f{i}", [square("cat", 1, 1)])
    result = subprocess.run([sys.executable, "-c", SIGTERM_MID_WRITE], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["lm"]
