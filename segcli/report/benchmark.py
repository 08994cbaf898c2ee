"""What `segcli benchmark` prints and writes: side-by-side rich tables and the JSON file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.console import Console
from rich.table import Table

from segcli import io
from segcli.commands.benchmark import (
    NMS_CHOICES,
    SHARED_PROCESS,
    STANDARD_NMS_NOTE,
    BenchSpec,
    run_benchmarks,
)
from segcli.commands.benchmark_stages import STAGES
from segcli.errors import ConfigError

ROWS = (  # (label, key, format)
    ("fps (images/s)", "fps", "{:.2f}"),
    ("latency p50 (ms)", "latency_ms_p50", "{:.1f}"),
    ("latency p90 (ms)", "latency_ms_p90", "{:.1f}"),
    ("latency p99 (ms)", "latency_ms_p99", "{:.1f}"),
    ("parameters", "params", "{:,}"),
    ("GFLOPs / image", "gflops", "{:.1f}"),
    ("peak memory (MiB)", "peak_memory_mb", None),  # formatted by _peak
    ("detections / image", "detections_per_image", "{:.1f}"),
    ("image size", "img_size", "{}"),
    ("network input (px)", "net_size", "{}x{}"),
    ("batch size", "batch_size", "{}"),
    ("classes", "num_classes", "{}"),
    ("NMS", "nms", "{}"),
    ("timed iterations", "iters", "{}"),
    ("device", "device", "{}"),
    ("torch", "torch", "{}"),
    ("torchvision", "torchvision", "{}"),
)


def benchmark(
    spec: BenchSpec, compare_nms: bool, json_out: Path | None, console: Console
) -> list[dict]:
    """`segcli benchmark`: measure, print the tables, write --json; returns the results."""
    specs = [spec]
    if compare_nms:
        if spec.nms or spec.train:
            raise ConfigError("--compare-nms times inference with both NMS; drop --nms/--train")
        specs = [dataclasses.replace(spec, nms=nms) for nms in NMS_CHOICES]
    results = run_benchmarks(specs)
    titles = [f"nms={r['nms']}" for r in results] if compare_nms else [results[0]["recipe"]]
    console.print(results_table(results, titles))
    if any("stages_ms" in r for r in results):
        console.print(stages_table(results, titles))
    first = results[0]
    if json_out:
        payload = dict(first)
        if compare_nms:
            payload["compare_nms"] = {t.removeprefix("nms="): r for t, r in zip(titles, results)}
            payload["compare_nms"]["fps_ratio_fast_vs_standard"] = first["fps"] / results[1]["fps"]
            payload["compare_nms"]["note"] = STANDARD_NMS_NOTE
        io.write_json(json_out, payload)
    return results


def results_table(results: list[dict], titles: list[str]) -> Table:
    """One column per result; with two or more, the fps of each relative to the first."""
    mode = "training throughput" if results[0]["mode"] == "train" else "inference"
    table = Table(title=f"{results[0]['recipe']} {mode}")
    table.add_column("")
    for title in titles:
        table.add_column(title, justify="right")
    for label, key, fmt in ROWS:
        if key == "peak_memory_mb":
            table.add_row(label, *(_peak(r) for r in results))
        elif any(r.get(key) is not None for r in results):
            table.add_row(label, *(_fmt(fmt, r.get(key)) for r in results))
    if len(results) > 1:
        base = results[0]["fps"]
        table.add_row(f"fps vs {titles[0]}", *(f"{r['fps'] / base:.2f}x" for r in results))
    table.caption = caption(results)
    return table


def caption(results: list[dict]) -> str:
    """What the peak memory covers and, when standard NMS ran, how it differs from Fast NMS."""
    lines = []
    for note in dict.fromkeys(r.get("peak_memory_note") for r in results):
        if note == SHARED_PROCESS:
            lines.append(
                "peak memory n/a: a CPU's peak RSS is the whole process's, and these runs share "
                "one (benchmark one alone for its own)"
            )
        elif note:
            lines.append(f"peak memory: {note}")
    if any(r.get("nms_note") for r in results):
        lines.append(STANDARD_NMS_NOTE)
    return "\n".join(lines)


def _peak(result: dict) -> str:
    if result.get("peak_memory_mb") is None:
        return result.get("peak_memory_note") or "-"
    return f"{result['peak_memory_mb']:.0f}"


def stages_table(results: list[dict], titles: list[str]) -> Table:
    """Milliseconds per call in each stage and its share of the call."""
    table = Table(title="where the inference time goes (ms per call, share)")
    table.add_column("stage")
    for title in titles:
        table.add_column(title, justify="right")
    for stage in STAGES:
        cells = []
        for r in results:
            ms = r.get("stages_ms", {}).get(stage)
            total = sum(r.get("stages_ms", {}).values()) or 1.0
            cells.append("-" if ms is None else f"{ms:.1f} ({100 * ms / total:.0f}%)")
        table.add_row(stage, *cells)
    return table


def _fmt(fmt: str, value) -> str:
    if value is None:
        return "-"
    return fmt.format(*value) if isinstance(value, list | tuple) else fmt.format(value)
