"""The speed comparisons of issue 5, side by side in one run, through `segcli benchmark`'s engine.

YOLACT against Mask R-CNN at equal 550 px input (`--img-size 550` runs Mask R-CNN at 550 on its
short side instead of its default 800 and YOLACT at its own 550; the YOLACT paper's table 1
compares them this way: 33.5 vs 8.6 fps on a Titan Xp), and Mask Scoring R-CNN against Mask
R-CNN at 550 and at both recipes' default size, 800 on the short side (the MS R-CNN paper's test
scale; the paper: the MaskIoU head costs almost nothing). All five subjects' timed calls
alternate, so load on a shared machine slows all of them alike; random weights with COCO's 81
classes. On the CPU they share one process, whose peak RSS is not any one recipe's: that row
reads n/a. `--table` adds every recipe at its default (paper) size, each in its own process,
with its own peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from segcli import io
from segcli.commands.benchmark import BenchSpec, run_benchmarks
from segcli.recipe import list_recipes
from segcli.report.benchmark import results_table, stages_table

SIZE = 550


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--table", action="store_true", help="every recipe at its default size")
    parser.add_argument("--json", help="also write the results and ratios to this file")
    args = parser.parse_args()
    console = Console()
    common = dict(device=args.device, warmup=args.warmup, iters=args.iters)
    specs = [
        BenchSpec("mask_rcnn", img_size=SIZE, **common),
        BenchSpec("ms_rcnn", img_size=SIZE, **common),
        BenchSpec("yolact", img_size=SIZE, **common),
        BenchSpec("mask_rcnn", **common),  # the recipes' own size: 800 on the short side
        BenchSpec("ms_rcnn", **common),
    ]
    results = run_benchmarks(specs)
    titles = [f"{r['recipe']} {r['net_size'][0]}" for r in results]
    console.print(results_table(results, titles))
    console.print(stages_table(results, titles))
    mask_rcnn, ms_rcnn, yolact, mask_rcnn_800, ms_rcnn_800 = (r["fps"] for r in results)
    console.print(f"device: {results[0]['device']}; torch {results[0]['torch']}", highlight=False)
    console.print(f"yolact / mask_rcnn fps at {SIZE} px: {yolact / mask_rcnn:.2f}x (target 1.2x)")
    console.print(f"ms_rcnn / mask_rcnn fps at {SIZE} px: {ms_rcnn / mask_rcnn:.2f}x (target 0.9x)")
    size = results[3]["net_size"][0]
    ratio = ms_rcnn_800 / mask_rcnn_800
    console.print(f"ms_rcnn / mask_rcnn fps at {size} px (default): {ratio:.3f}x (target 0.9x)")
    if args.json:
        ratios = {
            f"yolact_over_mask_rcnn_{SIZE}": yolact / mask_rcnn,
            f"ms_rcnn_over_mask_rcnn_{SIZE}": ms_rcnn / mask_rcnn,
            f"ms_rcnn_over_mask_rcnn_{size}": ratio,
        }
        io.write_json(args.json, {"ratios": ratios, "results": dict(zip(titles, results))})
    if args.table:
        console.print(every_recipe(args))


def every_recipe(args) -> Table:
    """`segcli benchmark` per recipe at its default image size, each in its own process so that
    peak memory is the recipe's own; `net size` is what the network ran at."""
    table = Table(title="every recipe at its default size (random weights, batch 1)")
    columns = ("recipe", "net size", "fps", "p50 ms", "p90 ms", "params", "GFLOPs", "peak MiB")
    for column in columns:
        table.add_column(column, justify="left" if column == "recipe" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in list_recipes():
            out = Path(tmp) / f"{recipe.name}.json"
            command = [sys.executable, "-m", "segcli", "benchmark", recipe.name, "--json", out]
            command += ["--device", args.device, "--warmup", args.warmup, "--iters", args.iters]
            done = subprocess.run([str(c) for c in command], capture_output=True, text=True)
            if done.returncode != 0:
                sys.stderr.write(done.stdout + done.stderr)
                done.check_returncode()
            r = json.loads(out.read_text())
            table.add_row(
                r["recipe"],
                "x".join(map(str, r["net_size"])),
                f"{r['fps']:.2f}",
                f"{r['latency_ms_p50']:.0f}",
                f"{r['latency_ms_p90']:.0f}",
                f"{r['params'] / 1e6:.1f}M",
                f"{r['gflops']:.0f}",
                f"{r['peak_memory_mb']:.0f}",
            )
    return table


if __name__ == "__main__":
    main()
