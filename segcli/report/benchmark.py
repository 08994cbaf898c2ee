"""What `segcli benchmark` prints and writes: side-by-side rich tables and the JSON file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.console import Console
from rich.table import Table

from segcli import io
from segcli.commands.benchmark import SHARED_PROCESS, BenchSpec, run_benchmarks
from segcli.commands.benchmark_stages import STAGES
from segcli.errors import ConfigError
from segcli.recipe import get_recipe

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
    ("variant", "variant", None),  # formatted by _variant
    ("timed iterations", "iters", "{}"),
    ("device", "device", "{}"),
    ("torch", "torch", "{}"),
    ("torchvision", "torchvision", "{}"),
)


def benchmark(
    spec: BenchSpec, compare: bool, json_out: Path | None, console: Console
) -> list[dict]:
    """`segcli benchmark`: measure, print the tables, write --json; returns the results.

    `compare`: every variant of the recipe side by side; the JSON is the first one's result
    with all of them under "compare", each with its fps relative to the first's."""
    specs = compared_specs(spec) if compare else [spec]
    results = run_benchmarks(specs)
    titles = [s.variant for s in specs] if compare else [results[0]["recipe"]]
    console.print(results_table(results, titles))
    if any("stages_ms" in r for r in results):
        console.print(stages_table(results, titles))
    if json_out:
        payload = dict(results[0])
        if compare:
            base = results[0]["fps"]
            payload["compare"] = {
                t: {**r, "fps_ratio": r["fps"] / base} for t, r in zip(titles, results)
            }
        io.write_json(json_out, payload)
    return results


def compared_specs(spec: BenchSpec) -> list[BenchSpec]:
    """One spec per variant of the recipe (`--compare`), in the recipe's order."""
    recipe = get_recipe(spec.recipe)
    if not recipe.variants:
        raise ConfigError(f"--compare: recipe {recipe.name} has no variants")
    if spec.variant or spec.train:
        raise ConfigError("--compare times inference of every variant; drop --variant/--train")
    return [dataclasses.replace(spec, variant=name) for name in recipe.variants]


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
        elif key == "variant" and any(r.get(key) for r in results):
            table.add_row(label, *(_variant(r) for r in results))
        elif any(r.get(key) is not None for r in results):
            table.add_row(label, *(_fmt(fmt, r.get(key)) for r in results))
    if len(results) > 1:
        base = results[0]["fps"]
        table.add_row(f"fps vs {titles[0]}", *(f"{r['fps'] / base:.2f}x" for r in results))
    table.caption = caption(results)
    return table


def caption(results: list[dict]) -> str:
    """What the peak memory covers and what each variant that ran is."""
    lines = []
    for note in dict.fromkeys(r.get("peak_memory_note") for r in results):
        if note == SHARED_PROCESS:
            lines.append(
                "peak memory n/a: a CPU's peak RSS is the whole process's, and these runs share "
                "one (benchmark one alone for its own)"
            )
        elif note:
            lines.append(f"peak memory: {note}")
    variants = {r["variant"]["name"]: r["variant"]["note"] for r in results if r.get("variant")}
    lines += [f"{name}: {note}" for name, note in variants.items()]
    return "\n".join(lines)


def _variant(result: dict) -> str:
    """The variant's name and options, e.g. `fast (nms=fast)`."""
    variant = result.get("variant")
    if not variant:
        return "-"
    options = ", ".join(f"{k}={v}" for k, v in variant["options"].items())
    return f"{variant['name']} ({options})"


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
