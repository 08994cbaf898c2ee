"""What `segcli benchmark` shows: side-by-side rich tables of results, and the stage breakdown."""

from __future__ import annotations

from rich.table import Table

SHARED_PROCESS = "n/a (shared process)"  # a peak that several measured models share
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
    for stage in dict.fromkeys(s for r in results for s in r.get("stages_ms", {})):
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
