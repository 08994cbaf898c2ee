"""Everything a GPU has to show, in one go, into one JSON summary (scripts/gpu_check.sh runs it).

Steps, each a subprocess with its own timeout, a failure recorded rather than fatal:
- `cuda`: the test suite's `cuda`-marked tests;
- `train/<recipe>`: one recipe of each family trained for TRAIN_STEPS AMP steps at its paper
  settings (model, image size, batch) on the built-in shapes written to disk as a user's data
  (so no quick profile applies), with every step's loss checked finite and the run's peak CUDA
  allocation (`torch.cuda.max_memory_allocated`, 30 steps plus the validation on VAL images);
- `bench_recipes`: scripts/bench_recipes.py, YOLACT against Mask R-CNN at 550 px (YOLACT's
  table 1: 2.4x at equal input) and MS R-CNN against Mask R-CNN (its paper: about equal);
- `bench_nms`: scripts/bench_nms.py, Fast NMS against torchvision's batched_nms.

`--augment` adds (after the rest, outside the 8 minutes) YOLACT's quick profile trained with
`augment=flip` and with `augment=ssd` side by side, with their final mask AP.

`--dry-run` is the CPU plumbing check: tiny images, two steps, batch 2, one recipe per task,
no benchmarks unless named with `--only`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from segcli import io

REPO = Path(__file__).resolve().parents[1]
TRAIN_STEPS = 30
FAMILIES = ("fcn8s", "unet", "deeplabv3plus", "mask_rcnn", "ms_rcnn", "yolact")
DRY_FAMILIES = ("fcn8s", "mask_rcnn")
TRAIN_IMAGES, VAL_IMAGES, IMAGE_SIZE = 32, 4, 512  # shapes written to disk; instance models
# resize them to their own size (800 short side, 550 square), semantic ones crop or pad them
TIMEOUTS = {"cuda": 150, "train": 150, "bench_recipes": 180, "bench_nms": 60, "augment": 900}
TAIL = 2000  # characters of a failed step's output kept in the summary
MIN_STEP = 10  # seconds: a step with less budget left is skipped


def main() -> None:
    args = parse_args()
    if args.command == "train-one":
        return train_one(args)
    global DEADLINE
    DEADLINE = START + args.budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node()}
    summary |= {"environment": environment(), "budget_s": args.budget}
    record(summary, out, {})
    wanted = set(args.only.split(",")) if args.only else None
    families = DRY_FAMILIES if args.dry_run and wanted is None else FAMILIES
    if chosen("cuda", wanted, dry=args.dry_run):
        pytest = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"]
        record(summary, out, {"cuda": run_step(pytest, TIMEOUTS["cuda"], out / "cuda.log")})
    trains = [r for r in families if chosen(r, wanted)]
    if trains:
        record(summary, out, train_families(trains, args, out))
    # the quick one first: a budget running out takes the longer benchmark
    for script in ("bench_nms.py", "bench_recipes.py"):
        if chosen(Path(script).stem, wanted, dry=args.dry_run):
            record(summary, out, {Path(script).stem: bench_step(script, args, out)})
    if args.augment:
        record(summary, out, augment_steps(args, out))
    print(json.dumps({k: summary[k] for k in ("failed", "seconds")}))
    print(f"summary: {out / 'summary.json'}")


def record(summary: dict, out: Path, steps: dict) -> None:
    """Add finished steps to the summary and rewrite it (a killed check keeps what it did)."""
    summary["steps"] = summary.get("steps", {}) | steps
    summary["failed"] = sorted(n for n, s in summary["steps"].items() if s["status"] != "ok")
    summary["seconds"] = round(time.monotonic() - START, 1)
    io.write_json(out / "summary.json", summary)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="check", choices=("check", "train-one"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="runs/gpu_check")
    parser.add_argument("--only", help="comma-separated step names (cuda, a recipe, bench_*)")
    parser.add_argument("--jobs", type=int, default=3, help="trainings run at once")
    parser.add_argument("--budget", type=float, default=480, help="seconds for every step")
    parser.add_argument("--dry-run", action="store_true", help="CPU plumbing: tiny and short")
    parser.add_argument("--augment", action="store_true", help="YOLACT quick: flip vs ssd")
    # train-one (a child process): one recipe's run and its peak memory
    parser.add_argument("--recipe")
    parser.add_argument("--data")
    parser.add_argument("--json")
    return parser.parse_args()


START = time.monotonic()
DEADLINE = math.inf  # main sets START + --budget; no step runs past it


def chosen(name: str, wanted: set | None, dry: bool = False) -> bool:
    return name in wanted if wanted is not None else not dry


def environment() -> dict:
    probe = "import torch, torchvision; print(torch.__version__, torchvision.__version__, "
    probe += "torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return {"python": sys.version.split()[0], "torch_torchvision_gpu": done.stdout.strip()}


def run_step(command: list, timeout: float, log: Path) -> dict:
    """Run `command` in its own process group (DataLoader workers die with it on a timeout);
    its output goes to `log`, its time is cut to what the budget has left. -> status ok /
    failed / timeout / skipped (no budget left), seconds, return code."""
    started = time.monotonic()
    if DEADLINE - started < MIN_STEP:
        return {"status": "skipped", "reason": "the --budget ran out before this step"}
    timeout = min(timeout, DEADLINE - started)
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(c) for c in command],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc = process.wait(timeout=timeout)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            rc, status = process.wait(), "timeout"
    record = {"status": status, "seconds": round(time.monotonic() - started, 1), "rc": rc}
    if status != "ok":
        record["output_tail"] = log.read_text(errors="replace")[-TAIL:]
    return record


def train_families(recipes, args, out: Path) -> dict:
    """Each recipe's training record, `args.jobs` at a time (the trainings only check that
    training runs; the benchmarks, which time, run alone afterwards)."""
    data = write_datasets(out / "data", 64 if args.dry_run else IMAGE_SIZE)

    def one(recipe: str) -> tuple[str, dict]:
        task_data = data["instance" if recipe in ("mask_rcnn", "ms_rcnn", "yolact") else "semantic"]
        child = out / f"train_{recipe}.json"
        command = [sys.executable, __file__, "train-one", "--recipe", recipe, "--data", task_data]
        command += ["--json", child, "--out", out, "--device", args.device]
        command += ["--dry-run"] if args.dry_run else []
        record = run_step(command, TIMEOUTS["train"], out / f"train_{recipe}.log")
        if child.is_file():
            record |= json.loads(child.read_text())
            if record["status"] == "ok" and not record["finite"]:
                record["status"] = "failed"
        return f"train/{recipe}", record

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        return dict(pool.map(one, recipes))


def write_datasets(root: Path, size: int) -> dict[str, str]:
    """The built-in shapes as user data: `semantic/{train,val}/{images,masks}` with
    class_names.txt, and `instance/annotations/instances_{train,val}.json` with `{train,val}/`."""
    import numpy as np
    from PIL import Image

    from segcli.data.coco import ShapesInstances
    from segcli.data.shapes import CLASS_NAMES, ShapesDataset

    semantic, instance = root / "semantic", root / "instance"
    for split, count in (("train", TRAIN_IMAGES), ("val", VAL_IMAGES)):
        shapes = ShapesDataset(split, size=size, count=count)
        for folder in ("images", "masks"):
            (semantic / split / folder).mkdir(parents=True, exist_ok=True)
        (instance / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            sample = shapes.load(i)
            image = Image.fromarray(sample["image"])
            image.save(semantic / split / "images" / f"{sample['name']}.png")
            image.save(instance / split / f"{sample['name']}.png")
            mask = Image.fromarray(sample["mask"].astype(np.uint8), "L")
            mask.save(semantic / split / "masks" / f"{sample['name']}.png")
        doc = ShapesInstances(split, size, count).coco().dataset
        io.write_json(instance / "annotations" / f"instances_{split}.json", doc)
    io.write_text(semantic / "class_names.txt", "\n".join(CLASS_NAMES) + "\n")
    return {"semantic": str(semantic), "instance": str(instance)}


def train_one(args) -> None:
    """The child: `segcli.train` of one recipe at its paper settings (AMP on CUDA), then the
    losses of every step from the run's metrics.jsonl and the peak CUDA allocation."""
    import torch

    import segcli

    options = dict(
        iters=2 if args.dry_run else TRAIN_STEPS,
        device=args.device,
        amp=True,
        pretrained=False,  # no network: ImageNet weights would be downloaded
        workers=0 if args.dry_run else 4,
        val_every=10**6,  # once, at the end
        out=str(Path(args.out) / "runs" / args.recipe),
        log_every=1,
        tensorboard=False,
    )
    if args.dry_run:
        options |= {"img_size": 64, "batch_size": 2}
    record = {"options": options}
    try:
        run = segcli.train(args.recipe, args.data, **options)
    finally:
        if torch.cuda.is_available():
            record["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        rows = read_rows(Path(options["out"]) / "metrics.jsonl")
        losses = [r["loss"] for r in rows if r.get("kind") == "train"]
        record |= {"steps": len(losses), "losses": losses}
        record["finite"] = bool(losses) and all(math.isfinite(v) for v in losses)
        val = [r for r in rows if r.get("kind") == "val"]
        record["val"] = {
            k: v for k, v in (val[-1] if val else {}).items() if not isinstance(v, list)
        }
        io.write_json(args.json, record)
    print(f"trained {args.recipe}: {run}")


def augment_steps(args, out: Path) -> dict:
    """`segcli train yolact` on the built-in shapes (its quick profile) with each `augment`, at
    once; each record carries the run's last validation."""
    global DEADLINE
    DEADLINE = max(DEADLINE, time.monotonic() + TIMEOUTS["augment"])  # outside the budget

    def one(augment: str) -> tuple[str, dict]:
        run = out / "runs" / f"yolact_quick_{augment}"
        command = [sys.executable, "-m", "segcli", "train", "yolact", "--device", args.device]
        command += ["--out", run, "--workers", "4", "--set", f"augment={augment}"]
        command += ["--iters", "4", "--set", "shapes_val=4"] if args.dry_run else []
        record = run_step(command, TIMEOUTS["augment"], out / f"augment_{augment}.log")
        val = [r for r in read_rows(run / "metrics.jsonl") if r.get("kind") == "val"]
        record["val"] = {k: v for k, v in (val or [{}])[-1].items() if not isinstance(v, list)}
        return f"augment/{augment}", record

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(one, ("flip", "ssd")))


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bench_step(script: str, args, out: Path) -> dict:
    """scripts/<script> --json; its results joined to the step's record."""
    result = out / f"{Path(script).stem}.json"
    command = [sys.executable, REPO / "scripts" / script, "--device", args.device, "--json", result]
    if args.dry_run and script == "bench_recipes.py":
        command += ["--warmup", "0", "--iters", "1"]
    record = run_step(command, TIMEOUTS[Path(script).stem], out / f"{Path(script).stem}.log")
    if result.is_file():
        record["results"] = json.loads(result.read_text())
    return record


if __name__ == "__main__":
    main()
