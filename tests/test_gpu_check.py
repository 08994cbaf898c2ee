"""scripts/gpu_check.py's plumbing on the CPU: the data it trains on is data segcli reads, and
its steps' time limits, failures and budget are recorded rather than fatal."""

import importlib.util
import sys

import pytest

from segcli.data.sources import open_source

from helpers import REPO


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_written_shapes_are_user_data(gpu_check, tmp_path):
    data = gpu_check.write_datasets(tmp_path, 32)
    semantic = open_source(data["semantic"], "train", task="semantic")
    assert len(semantic) == gpu_check.TRAIN_IMAGES
    assert semantic.load(0)["mask"].shape == (32, 32)
    instance = open_source(data["instance"], "val", task="instance")
    assert len(instance) == gpu_check.VAL_IMAGES
    assert instance.class_names == ("background", "square", "circle", "triangle")
    assert instance.load(0)["instances"]


def test_steps_record_failures_timeouts_and_the_budget(gpu_check, tmp_path, monkeypatch):
    fail = [sys.executable, "-c", "raise SystemExit('broken on purpose')"]
    record = gpu_check.run_step(fail, 30, tmp_path / "fail.log")
    assert record["status"] == "failed" and record["rc"] == 1
    assert "broken on purpose" in record["output_tail"]
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    record = gpu_check.run_step(sleep, 1, tmp_path / "sleep.log")
    assert record["status"] == "timeout" and record["seconds"] < 30
    monkeypatch.setattr(gpu_check, "DEADLINE", gpu_check.time.monotonic() + 5)
    assert gpu_check.run_step(sleep, 60, tmp_path / "late.log")["status"] == "skipped"
