"""Never lose a run, never show a traceback: resume onto other data, --epochs, bad numbers,
data errors mid-training, stray run folders, --metric against the task, strict JSON, and the
rough edges a new user meets in the first hour. Each through the real CLI."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from segcli.engine import checkpoint
from segcli.engine.train_log import Reporter
from segcli.progress import LINE_EVERY_S

from helpers import TINY_FCN, TINY_SHAPES, run_segcli, write_pair

TINY = ["--iters", "1", "--batch-size", "2", "--img-size", "32", "--workers", "0", *TINY_FCN]


def one_line_error(result, *fragments: str) -> None:
    """Exit 2, a single `error:` line (no traceback) holding every fragment."""
    output = result.output if hasattr(result, "output") else result.stderr
    assert result.exit_code == 2 if hasattr(result, "exit_code") else result.returncode == 2
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "Traceback" not in output, output
    flat = " ".join(output.split())
    for fragment in fragments:
        assert fragment in flat, (fragment, output)


def other_classes(root):
    """A VOC folder like voc_dir with a fourth class."""
    rng = np.random.default_rng(5)
    stems = [f"o{i}" for i in range(4)]
    for stem in stems:
        write_pair(root / "JPEGImages", root / "SegmentationClass", stem, rng, num_classes=4)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("\n".join(stems[:3]))
    (sets / "val.txt").write_text(stems[3])
    (root / "class_names.txt").write_text("_background_\na\nb\nc")
    return root


def test_resume_onto_other_data_is_refused_and_touches_nothing(cli, in_tmp, voc_dir):
    assert cli("train", "fcn8s", "--data", voc_dir, *TINY).exit_code == 0
    run = in_tmp / "runs/fcn8s/1"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    result = cli("train", "fcn8s", "--data", other_classes(in_tmp / "b"), "--resume", "auto")
    one_line_error(result, "cannot resume with other settings", "data")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_resume_auto_says_which_run_and_names_stubs(cli, in_tmp, voc_dir):
    assert cli("train", "fcn8s", "--data", voc_dir, *TINY).exit_code == 0
    (in_tmp / "runs/fcn8s/2").mkdir()  # a run stopped before its first save
    result = cli("train", "fcn8s", "--resume", "auto", "--iters", "2")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "--resume auto: runs/fcn8s/1, the latest fcn8s run with a last.pt" in flat
    assert "newer runs/fcn8s/2 without last.pt passed over" in flat
    assert "resuming with iters: 1 -> 2" in flat  # its own data, from last.pt
    assert checkpoint.load(in_tmp / "runs/fcn8s/1/last.pt")["progress"]["iteration"] == 2


def test_resume_with_other_classes_in_the_same_folder_is_refused(cli, in_tmp, voc_dir):
    assert cli("train", "fcn8s", "--data", voc_dir, *TINY, "--out", "r").exit_code == 0
    (voc_dir / "class_names.txt").write_text("_background_\nbright\nbrightest")
    result = cli("train", "fcn8s", "--out", "r", "--resume", "auto", "--iters", "2")
    one_line_error(result, "are not the run's", "cannot continue on it")


def test_epochs_replaces_the_recipes_iterations(cli, in_tmp, voc_dir):
    flags = [f for f in TINY if f not in ("--iters", "1")]
    result = cli("train", "fcn8s", "--data", voc_dir, *flags, "--epochs", "2")
    assert result.exit_code == 0, result.output
    # 6 training images, batch 2: 3 steps an epoch
    assert checkpoint.load(in_tmp / "runs/fcn8s/1/last.pt")["progress"]["iteration"] == 6


BAD_FLAGS = {
    "--iters 0": (["--iters", "0"], "--iters 0: must be at least 1"),
    "--iters -5": (["--iters", "-5"], "--iters -5: must be at least 1"),
    "--epochs 0": (["--epochs", "0"], "--epochs 0: must be at least 1"),
    "--lr -1": (["--lr", "-1"], "--lr -1.0: must be greater than 0"),
    "--img-size 0": (["--img-size", "0"], "--img-size 0: must be at least 32"),
    "--workers -1": (["--workers", "-1"], "--workers -1: must be at least 0"),
    "--device mps": (["--device", "mps"], "--device mps: Apple's MPS is not available"),
    "optimizer=adamx": (["--set", "optimizer=adamx"], "did you mean adam"),
    "schedule=cosine": (["--set", "schedule=cosine"], "expected one of poly, step, constant"),
    "learning_rate": (["--set", "learning_rate=0.1"], "did you mean lr?"),
    "--freeze x": (["--freeze", "backbone"], "expected none, heads or a number"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_numbers_and_names_are_one_line_before_any_folder(cli, in_tmp, case):
    flags, message = BAD_FLAGS[case]
    one_line_error(cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, *flags), message)
    assert not (in_tmp / "runs").exists()


def test_files_that_are_not_checkpoints_say_what_they_are(cli, in_tmp, voc_dir):
    (in_tmp / "notes.pt").write_text("my training notes\n")
    (in_tmp / "half.pt").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(in_tmp / "x.jpg")
    one_line_error(cli("eval", "notes.pt"), "notes.pt: not a checkpoint: a text file")
    one_line_error(cli("infer", "half.pt", "x.jpg"), "half.pt: not a checkpoint: a PyTorch (zip)")
    result = cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--resume", "notes.pt")
    one_line_error(result, "notes.pt: not a checkpoint: a text file")
    result = cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--weights", "half.pt")
    one_line_error(result, "half.pt: not a weights file", "truncated or damaged")
    assert not (in_tmp / "runs").exists()


def test_bad_val_mask_is_found_before_training(cli, in_tmp, voc_dir):
    Image.fromarray(np.full((40, 56), 7, np.uint8), "L").save(
        voc_dir / "SegmentationClass" / "img07.png"
    )
    one_line_error(cli("train", "fcn8s", "--data", voc_dir, *TINY), "img07.png", "label value 7")
    assert not (in_tmp / "runs").exists()


def test_error_mid_epoch_writes_last_pt_and_the_resume_command(in_tmp):
    """A corrupt image past the pre-flight: the run keeps its steps and continues once the file
    is fixed."""
    root = in_tmp / "many"
    rng = np.random.default_rng(2)
    for i in range(20):
        write_pair(root / "images", root / "masks", f"m{i:02d}", rng)
    (root / "train.txt").write_text("\n".join(f"m{i:02d}" for i in range(18)))
    (root / "val.txt").write_text("m18\nm19\n")
    good = (root / "images" / "m17.jpg").read_bytes()
    (root / "images" / "m17.jpg").write_bytes(b"broken")
    args = ["train", "fcn8s", "--data", root, *TINY[2:], "--iters", "30", "--out", "run"]
    result = run_segcli(*args, "--save-every", "0", cwd=in_tmp)
    one_line_error(result, "m17.jpg: cannot decode image", "last.pt written at iteration")
    assert "resume with: segcli train fcn8s --out run --resume auto" in result.stderr
    saved = checkpoint.load(in_tmp / "run/last.pt")["progress"]["iteration"]
    assert saved >= 1
    (root / "images" / "m17.jpg").write_bytes(good)
    more = str(saved + 1)  # one more step is enough to show the run goes on
    resumed = run_segcli("train", "fcn8s", "--out", "run", "--resume", "auto", "--iters", more,
                         cwd=in_tmp)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from run/last.pt at iteration {saved}/{more}" in resumed.stdout


def test_infer_with_a_bad_input_writes_nothing(cli, in_tmp):
    assert cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "1").exit_code == 0
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(in_tmp / "good.jpg")
    (in_tmp / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    result = cli("infer", "runs/fcn8s/1/best.pt", "good.jpg", "bad.jpg", "--out", "pred")
    one_line_error(result, "bad.jpg: cannot decode image")
    assert list((in_tmp / "pred").rglob("*")) == []
    result = cli("infer", "runs/fcn8s/1/best.pt", "good.jpg", "--score-threshold", "0.3")
    one_line_error(result, "--score-threshold applies to instance recipes")


def test_metric_is_checked_against_the_task_before_evaluating(cli, in_tmp):
    assert cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "1").exit_code == 0
    started = time.perf_counter()
    result = cli("eval", "--metric", "mask-ap")
    one_line_error(result, "--metric mask-ap:", "reports miou, pa, mpa, fwiou, all")
    assert time.perf_counter() - started < 30


def test_json_is_strict_null_for_absent_classes(cli, in_tmp):
    gt = np.zeros((4, 4), np.uint8)
    for folder in ("gt", "pred"):
        (in_tmp / folder).mkdir()
        Image.fromarray(gt, "L").save(in_tmp / folder / "a.png")
    args = ["eval", "--pred", "pred", "--gt", "gt", "--num-classes", "3", "--json", "s.json"]
    assert cli(*args).exit_code == 0

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    scores = json.loads((in_tmp / "s.json").read_text(), parse_constant=refuse)
    assert scores["per_class_iou"] == [1.0, None, None]


def test_show_config_names_every_origin_and_trains_nothing(cli, in_tmp):
    result = cli("train", "mask_rcnn", "--data", "d", "--img-size", "320", "--set", "lr=0.01",
                 "--show-config")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "flag" in rows["img_size"] and "--set" in rows["lr"] and "recipe" in rows["iters"]
    assert "flag" in rows["min_size (model)"] and "default" in rows["seed"]
    assert not (in_tmp / "runs").exists()


def test_empty_val_split_trains_without_validation(cli, in_tmp, voc_dir):
    (voc_dir / "ImageSets/Segmentation/val.txt").write_text("")
    result = cli("check", "--data", voc_dir)
    assert result.exit_code == 0 and "train runs without validation" in result.output
    result = cli("train", "fcn8s", "--data", voc_dir, *TINY)
    assert result.exit_code == 0, result.output
    assert "training without validation" in " ".join(result.output.split())
    run = in_tmp / "runs/fcn8s/1"
    assert (run / "last.pt").is_file() and not (run / "best.pt").exists()


def test_validations_are_one_line_until_the_final_table(cli, in_tmp):
    result = cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "3", "--val-every", "1")
    assert result.exit_code == 0, result.output
    assert result.output.count("validation at iteration 1: mIoU") == 1
    assert result.output.count("validation at iteration 3") == 1  # the table's title
    assert "background" in result.output.split("validation at iteration 3")[1]


def test_progress_lines_off_a_terminal_come_at_least_every_30_s(monkeypatch):
    from rich.console import Console

    console = Console(file=__import__("io").StringIO(), force_terminal=False, width=200)
    clock = iter(float(t) for t in range(0, 10_000, 31))  # each step 31 s after the last
    monkeypatch.setattr("segcli.progress.time.perf_counter", lambda: next(clock))
    reporter = Reporter(console)
    with reporter.attached(), reporter.progress(100_000, 0) as bar:
        for _ in range(3):
            bar.advance(status="loss 1.0")
    assert console.file.getvalue().count("train ") == 3 and LINE_EVERY_S == 30


def test_single_process_sigterm_does_not_mention_torchrun(in_tmp):
    import signal
    import subprocess
    import sys

    args = [sys.executable, "-m", "segcli", "train", "fcn8s", *TINY_SHAPES, *TINY_FCN]
    proc = subprocess.Popen(
        [*args, "--iters", "100000", "--set", "shapes_train=64"],
        cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list(in_tmp.glob("runs/fcn8s/1/metrics.jsonl")):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "stopped by SIGTERM" in err and "torchrun" not in err


def test_tensors_stay_finite_in_a_saved_error_checkpoint(cli, in_tmp):
    """--lr 1e30: the non-finite step is refused, the last good state is what last.pt holds."""
    flags = [*TINY_SHAPES, *TINY_FCN, "--set", "optimizer=adam", "--save-every", "0"]
    result = cli("train", "fcn8s", *flags, "--iters", "6", "--lr", "1e30", "--out", "run")
    one_line_error(result, "non-finite loss at iteration")
    kept = checkpoint.load(in_tmp / "run/last.pt")
    assert kept["progress"]["iteration"] >= 1
    # train.log ends as stderr does, so a log read later says why the run stopped
    last_line = (in_tmp / "run/train.log").read_text().strip().splitlines()[-1]
    assert "ERROR   error: non-finite loss at iteration" in last_line
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


def test_a_warm_up_longer_than_the_run_is_named(cli, in_tmp):
    flags = [*TINY_SHAPES, *TINY_FCN, "--iters", "2", "--set", "warmup_iters=5"]
    result = cli("train", "fcn8s", *flags)
    assert result.exit_code == 0, result.output
    assert "warmup_iters 5 >= 2 iterations" in " ".join(result.output.split())


def test_sigterm_to_the_process_group_is_one_line(in_tmp):
    """A scheduler or `docker stop` signals every process: the DataLoader workers may die
    before the main process's handler runs, and that must read the same."""
    import os
    import signal
    import subprocess
    import sys

    args = [sys.executable, "-m", "segcli", "train", "fcn8s", *TINY_SHAPES, *TINY_FCN]
    proc = subprocess.Popen(
        [*args, "--iters", "100000", "--set", "shapes_train=64", "--workers", "2"],
        cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list(in_tmp.glob("runs/fcn8s/1/metrics.jsonl")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "stopped by SIGTERM" in err, err[-3000:]
    assert "Traceback" not in err
    log = (in_tmp / "runs/fcn8s/1/train.log").read_text().strip().splitlines()
    assert log[-1].endswith(err.strip().splitlines()[-1])
