"""`segcli benchmark` through the real CLI (tiny models, a couple of iterations), and the
per-stage attribution on a hand-built profiler event tree."""

import json
from types import SimpleNamespace

import pytest

from segcli.engine import stages

from conftest import TINY_YOLACT_FLAGS

DESIGN_KEYS = {
    "fps",
    "latency_ms_p50",
    "latency_ms_p90",
    "params",
    "gflops",
    "peak_memory_mb",
    "device",
    "img_size",
    "batch_size",
    "detections_per_image",
}
QUICK = ["--iters", "2", "--warmup", "1", "--device", "cpu"]
TINY_FCN = ["--set", "width=0.125", "--set", "fc_channels=32", "--img-size", "48"]


def test_semantic_recipe_fps_and_json(cli, in_tmp):
    result = cli("benchmark", "fcn8s", *QUICK, *TINY_FCN, "--batch-size", "2", "--json", "b.json")
    assert result.exit_code == 0, result.output
    assert "fps (images/s)" in result.output and "GFLOPs / image" in result.output
    payload = json.loads((in_tmp / "b.json").read_text())
    assert DESIGN_KEYS <= set(payload)
    assert payload["fps"] > 0 and payload["img_size"] == 48 and payload["batch_size"] == 2
    assert payload["num_classes"] == 21 and payload["gflops"] > 0 and payload["params"] > 0
    assert payload["latency_ms_p50"] <= payload["latency_ms_p90"] <= payload["latency_ms_p99"]
    assert payload["detections_per_image"] is None and "torch" in payload


def test_yolact_fps_with_stages_and_both_nms_side_by_side(cli, in_tmp):
    args = [*QUICK, *TINY_YOLACT_FLAGS, "--img-size", "64", "--compare-nms", "--json", "y.json"]
    result = cli("benchmark", "yolact", *args)
    assert result.exit_code == 0, result.output
    assert "nms=fast" in result.output and "nms=standard" in result.output
    for stage in stages.STAGES:
        assert stage in result.output
    payload = json.loads((in_tmp / "y.json").read_text())
    assert DESIGN_KEYS <= set(payload) and payload["num_classes"] == 81
    assert payload["nms"] == "fast" and payload["detections_per_image"] >= 0
    assert set(payload["stages_ms"]) == set(stages.STAGES)
    both = payload["compare_nms"]
    assert both["standard"]["nms"] == "standard" and both["fps_ratio_fast_vs_standard"] > 0
    # The same random weights for both: the same parameter count and FLOPs.
    assert both["fast"]["params"] == both["standard"]["params"]


@pytest.mark.parametrize(
    "recipe, options",
    [("fcn8s", TINY_FCN), ("yolact", [*TINY_YOLACT_FLAGS, "--img-size", "64"])],
)
def test_training_throughput(cli, in_tmp, recipe, options):
    result = cli("benchmark", recipe, "--train", *QUICK, *options, "--json", "t.json")
    assert result.exit_code == 0, result.output
    payload = json.loads((in_tmp / "t.json").read_text())
    assert payload["mode"] == "train" and payload["fps"] > 0 and payload["gflops"] > 0
    assert "throughput" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["fcn8s", "--nms", "fast"], "has no choice of NMS"),
        (["yolact", "--compare-nms", "--train"], "--compare-nms"),
        (["fcn8s", "--iters", "0"], "--iters must be at least 1"),
        (["yolact", "--nms", "soft"], "expected fast or standard"),
        (["nosuchnet"], "unknown recipe"),
        (["fcn8s", "--set", "lr=0.1"], "only model options"),
    ],
)
def test_bad_options_are_one_line_errors(cli, args, message):
    result = cli("benchmark", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def event(name, duration, parent=None):
    return SimpleNamespace(name=name, cpu_time_total=duration, cpu_parent=parent)


def test_stage_attribution_moves_nms_out_of_its_stage():
    # total 100 us: transform 5, backbone 40, roi_heads 30 (holding an NMS op of 6 with a
    # nested op of 1 that must not count twice), and an NMS range of 4 outside any child.
    total = event(stages.TOTAL, 100)
    heads = event(stages.PREFIX + "roi_heads", 30, total)
    nms_op = event("torchvision::nms", 6, heads)
    events = [
        total,
        event(stages.PREFIX + "transform", 5, total),
        event(stages.PREFIX + "backbone", 40, total),
        heads,
        nms_op,
        event("torchvision::nms", 1, nms_op),
        event("segcli::nms", 4, total),
    ]
    assert stages.attribute(events) == {
        "preprocess": 5,
        "backbone+FPN": 40,
        "heads": 24,
        "NMS": 10,
        "mask assembly/paste": 100 - 5 - 40 - 30 - 4,
    }
