"""`segcli benchmark` through the real CLI (tiny models, a couple of iterations), and the
per-stage attribution on a hand-built profiler event tree."""

import json
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from segcli.commands import benchmark_stages as stages
from segcli.commands.benchmark import size_sets, variant_of, variant_sets
from segcli.config import parse_model_sets
from segcli.recipe import get_recipe, list_recipes
from segcli.recipes.nets.yolact import Yolact

from helpers import TINY_RCNN, TINY_YOLACT_FLAGS, set_flags

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
    "net_size",
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
    assert payload["net_size"] == [48, 48]  # a semantic model runs at the image size
    assert payload["peak_memory_mb"] > 0  # alone in the process: its peak RSS


def test_yolact_fps_with_stages_and_both_nms_variants_side_by_side(cli, in_tmp):
    args = [*QUICK, *TINY_YOLACT_FLAGS, "--img-size", "64", "--compare", "--json", "y.json"]
    result = cli("benchmark", "yolact", *args)
    assert result.exit_code == 0, result.output
    assert "nms=fast" in result.output and "nms=standard" in result.output
    for stage in stages.STAGES:
        assert stage in result.output
    assert "n/a (shared process)" in result.output and "traditional_nms" in result.output
    payload = json.loads((in_tmp / "y.json").read_text())
    assert DESIGN_KEYS <= set(payload) and payload["num_classes"] == 81
    assert payload["model_options"]["nms"] == "fast" and payload["net_size"] == [64, 64]
    assert payload["variant"]["name"] == "fast"
    both = payload["compare"]
    fast, standard = both["fast"], both["standard"]
    assert standard["model_options"]["nms"] == "standard" and "top_k" in standard["variant"]["note"]
    assert fast["fps_ratio"] == 1.0
    assert standard["fps_ratio"] == pytest.approx(standard["fps"] / fast["fps"])
    # The same random weights and images for both: the same model, the same FLOPs (equal
    # detection counts, so equal mask assembly), and Fast NMS keeps a subset of standard NMS.
    assert fast["params"] == standard["params"] and fast["gflops"] == standard["gflops"] > 0
    assert 0 < fast["detections_per_image"] <= standard["detections_per_image"]
    for r in (fast, standard):
        # Both share this process: no per-run peak RSS on the CPU.
        assert r["peak_memory_mb"] is None and r["peak_memory_note"] == "n/a (shared process)"
        ms = r["stages_ms"]
        assert set(ms) == set(stages.STAGES)
        assert all(v >= 0 for v in ms.values()) and ms["NMS"] > 0, ms
        # No timing bounds: a loaded machine stretches the profiled call or the timed ones
        # (scripts/bench_recipes.py measures speed).


RCNN_FLAGS = set_flags(TINY_RCNN)
TINY_YOLACT_ANY_SIZE = [f for f in TINY_YOLACT_FLAGS if not f.startswith("--set=size=")]


@pytest.mark.parametrize(
    "recipe, options, net_size",
    [
        ("mask_rcnn", [*RCNN_FLAGS, "--img-size", "64"], 64),  # min_size 800 -> 64
        ("mask_rcnn", [*RCNN_FLAGS, "--img-size", "64", "--set", "min_size=48"], 48),  # --set wins
        ("yolact", [*TINY_YOLACT_ANY_SIZE, "--img-size", "48"], 48),  # size 550 -> 48
        ("yolact", [*TINY_YOLACT_ANY_SIZE, "--set", "size=40"], 40),  # default images: its size
    ],
)
def test_network_runs_at_the_img_size(cli, in_tmp, recipe, options, net_size):
    result = cli("benchmark", recipe, *QUICK, *options, "--json", "n.json")
    assert result.exit_code == 0, result.output
    payload = json.loads((in_tmp / "n.json").read_text())
    assert payload["net_size"] == [net_size, net_size]
    assert f"{net_size}x{net_size}" in result.output
    if "--img-size" not in options:  # without it, images as large as the model's own resize
        assert payload["img_size"] == net_size


def test_size_options_follow_img_size_unless_set():
    mask_rcnn, yolact, fcn = (get_recipe(n) for n in ("mask_rcnn", "yolact", "fcn8s"))
    # the long side capped at the paper's 1333 / 800 ratio
    assert size_sets(mask_rcnn, 550, set()) == {"min_size": 550, "max_size": 916}
    assert size_sets(mask_rcnn, 2000, set()) == {"min_size": 2000, "max_size": 3332}
    assert size_sets(mask_rcnn, 550, {"max_size"}) == {"min_size": 550}
    assert size_sets(mask_rcnn, 550, {"min_size"}) == {"max_size": 916}
    assert size_sets(mask_rcnn, None, set()) == {}
    # YOLACT's anchors are pixels at its input size: the paper's 550 px ones, scaled
    anchors = {"anchor_scales": (17, 35, 70, 140, 279)}
    assert size_sets(yolact, 400, set()) == {"size": 400, **anchors}
    assert size_sets(yolact, 400, {"size"}) == anchors
    assert size_sets(fcn, 400, set()) == {}


@pytest.mark.slow
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
        (["fcn8s", "--variant", "fast"], "fcn8s has no variants"),
        (["fcn8s", "--compare"], "fcn8s has no variants"),
        (["yolact", "--compare", "--train"], "--compare"),
        (["yolact", "--compare", "--variant", "fast"], "drop --variant"),
        (["fcn8s", "--iters", "0"], "--iters must be at least 1"),
        (["yolact", "--variant", "soft"], "expected fast or standard"),
        (["yolact", "--variant", "fast", "--set", "nms=standard"], "--set nms: variant fast"),
        (["yolact", "--nms", "soft"], "expected fast or standard"),  # deprecated --variant
        (["yolact", "--compare-nms", "--train"], "--compare-nms are deprecated"),
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
        event(Yolact.nms_labels[0], 4, total),
    ]
    assert stages.attribute(events, (*stages.TORCHVISION_NMS, *Yolact.nms_labels)) == {
        "preprocess": 5,
        "backbone+FPN": 40,
        "heads": 24,
        "NMS": 10,
        "mask assembly/paste": 100 - 5 - 40 - 30 - 4,
    }
    # A range the model does not declare is not NMS: it stays in the rest of the call.
    assert stages.attribute(events)["NMS"] == 6


class RangedNMS(torch.nn.Module):
    """A model whose NMS is a profiler range of its own, declared in `nms_labels`."""

    nms_labels = ("test::nms",)

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(4, 4)

    def forward(self, x):
        x = self.backbone(x)
        with torch.profiler.record_function("test::nms"):
            time.sleep(0.005)
        return x


def test_stage_breakdown_counts_the_ranges_a_model_declares_as_nms():
    model, x = RangedNMS(), torch.zeros(1, 4)
    declared = stages.stage_breakdown(model, lambda: model(x), torch.device("cpu"), repeats=1)
    assert declared["NMS"] >= 4 and declared["backbone+FPN"] > 0, declared
    model.nms_labels = ()
    undeclared = stages.stage_breakdown(model, lambda: model(x), torch.device("cpu"), repeats=1)
    assert undeclared["NMS"] == 0 and undeclared["mask assembly/paste"] >= 4, undeclared


def test_recipe_variants_are_model_options_with_a_note():
    for recipe in list_recipes():
        for name, variant in recipe.variants.items():
            assert set(variant) == {"options", "note"} and variant["note"], recipe.name
            assert parse_model_sets(variant_sets(recipe, name, set()), recipe) == dict(
                variant["options"]
            )
    yolact = get_recipe("yolact")
    assert list(yolact.variants) == ["fast", "standard"]
    # The variant a result reports follows the options, however they were set.
    assert variant_of(yolact, {**yolact.options})["name"] == "fast"
    assert variant_of(yolact, {**yolact.options, "nms": "standard"})["name"] == "standard"
    assert variant_of(get_recipe("fcn8s"), {}) is None


PEAK_IN_CHILD = (
    "from segcli.commands.benchmark_measures import process_peak_rss_mb; "
    "print(process_peak_rss_mb())"
)


@pytest.mark.slow
def test_cpu_peak_memory_is_the_process_own_not_its_parents():
    """getrusage's ru_maxrss survives fork and exec: a benchmark started by a parent holding
    2 GB would report at least that. VmHWM is the child's own peak."""
    held = torch.ones(2 * 2**30 // 4)  # 2 GiB resident in this (parent) process
    child = subprocess.run([sys.executable, "-c", PEAK_IN_CHILD], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    assert 0 < float(child.stdout) < 2048 and held.sum() > 0
