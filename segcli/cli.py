"""The `segcli` command line: each subcommand parses its options and calls one function."""

from __future__ import annotations

import functools
import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from segcli.errors import SegcliError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, evaluate, run and benchmark the classic segmentation models.",
)
console = Console()
err_console = Console(stderr=True)


def user_errors(command):
    """Turn a SegcliError into one line on stderr and its exit code (2, or 130 for Ctrl-C)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SegcliError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("error: interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


class Metric(str, Enum):
    miou = "miou"
    pa = "pa"
    mpa = "mpa"
    fwiou = "fwiou"
    all = "all"
    mask_ap = "mask-ap"
    box_ap = "box-ap"


@app.command("recipes")
@user_errors
def recipes_command():
    """List the recipes: name, task, paper, parameters (VOC 21 / COCO 81 classes)."""
    from segcli.recipe import list_recipes

    table = Table(title="segcli recipes")
    for column in ("name", "task", "paper", "parameters"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for recipe in list_recipes():
        table.add_row(
            recipe.name, recipe.task, recipe.paper, f"{recipe.count_parameters() / 1e6:.1f}M"
        )
    console.print(table)


@app.command("train")
@user_errors
def train_command(
    recipe: Annotated[str, typer.Argument(help="Recipe name (see `segcli recipes`).")],
    data: Annotated[
        str | None, typer.Option(help="Dataset folder; default: built-in shapes.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (ignored when --iters is given).")
    ] = None,
    iters: Annotated[int | None, typer.Option(help="Optimizer steps; overrides --epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step and process.")] = None,
    img_size: Annotated[int | None, typer.Option(help="Training crop / resize size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Base learning rate.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    amp: Annotated[
        bool | None, typer.Option("--amp/--no-amp", help="Mixed precision (CUDA).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader worker processes.")] = None,
    out: Annotated[str | None, typer.Option(help="Run folder; default runs/<recipe>/<n>.")] = None,
    save_every: Annotated[
        int | None, typer.Option(help="Write last.pt every N iterations.")
    ] = None,
    val_every: Annotated[
        int | None, typer.Option(help="Validate every N iterations (0: per epoch).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="auto (the --out run) or a last.pt path.")
    ] = None,
    weights: Annotated[str | None, typer.Option(help="Initial weights (matching layers).")] = None,
    pretrained: Annotated[
        bool | None,
        typer.Option(
            "--pretrained/--no-pretrained", help="ImageNet backbone from the torch cache."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value overrides.")] = None,
):
    """Train RECIPE (no --data: on the built-in shapes data)."""
    from segcli.config import resolve_config
    from segcli.engine.loop import fit
    from segcli.recipe import get_recipe

    chosen = get_recipe(recipe)
    flags = dict(
        data=data,
        epochs=epochs,
        iters=iters,
        batch_size=batch_size,
        img_size=img_size,
        lr=lr,
        device=device,
        amp=amp,
        workers=workers,
        out=out,
        save_every=save_every,
        val_every=val_every,
        resume=resume,
        weights=weights,
        pretrained=pretrained,
        seed=seed,
    )
    fit(resolve_config(chosen, flags, set_ or []), chosen, console)


@app.command("eval")
@user_errors
def eval_command(
    checkpoint: Annotated[
        Path | None, typer.Argument(help="Default: best.pt of the latest run.")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Dataset; default: the checkpoint's.")] = None,
    metric: Annotated[Metric, typer.Option(help="Score to report.")] = Metric.miou,
    pred: Annotated[Path | None, typer.Option(help="Folder of predicted label PNGs.")] = None,
    gt: Annotated[Path | None, typer.Option(help="Folder of ground-truth label PNGs.")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Classes, with --pred/--gt.")] = None,
    ignore_index: Annotated[int, typer.Option(help="Ignored label, with --pred/--gt.")] = 255,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the scores as JSON.")
    ] = None,
):
    """Evaluate a checkpoint on a val split, or saved label PNGs with --pred/--gt."""
    from segcli import io
    from segcli.engine import evaluate, runs, semantic
    from segcli.errors import ConfigError

    if pred or gt:
        if not (pred and gt and num_classes):
            raise ConfigError("--pred, --gt and --num-classes go together")
        result = evaluate.evaluate_label_folders(pred, gt, num_classes, ignore_index)
        names, task = tuple(f"class_{i}" for i in range(num_classes)), semantic
    else:
        path = checkpoint or runs.latest_run(needs="best.pt") / "best.pt"
        result, names, task = evaluate.evaluate_checkpoint(path, data, device, workers)
        console.print(f"checkpoint: {path}", highlight=False)
    console.print(task.results_table(result, names, "evaluation"))
    _print_scores(result, metric.value)
    if json_out:
        io.write_json(
            json_out,
            {k: v for k, v in result.items() if k != "confusion"} | {"class_names": list(names)},
        )


def _print_scores(result: dict, metric: str) -> None:
    keys = ["pa", "mpa", "miou", "fwiou"] if metric == "all" else [metric.replace("-", "_")]
    for key in keys:
        value = result.get(key)
        if value is None:
            raise SegcliError(f"--metric {metric}: not available for this model")
        console.print(f"{key}: {value:.4f}" if not math.isnan(value) else f"{key}: nan")


@app.command("infer")
@user_errors
def infer_command(
    checkpoint: Annotated[Path, typer.Argument(help="A best.pt or last.pt.")],
    sources: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/infer"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
):
    """Predict class maps: <stem>.png (palette PNG of class ids) and <stem>_overlay.jpg."""
    from segcli.engine.infer import infer

    written = infer(checkpoint, sources, out, device, console)
    console.print(f"wrote {len(written)} prediction(s) and overlays to {out}", highlight=False)


@app.command("check")
@user_errors
def check_command(
    data: Annotated[str, typer.Option(help="Dataset folder to check.")],
    num_classes: Annotated[int | None, typer.Option(help="Classes (default: dataset's).")] = None,
    ignore_index: Annotated[int, typer.Option(help="Label value that is ignored.")] = 255,
):
    """The label doctor: find label problems before any GPU time (exit 1 if errors)."""
    from segcli.engine.check import run_check

    report = run_check(data, num_classes, ignore_index, console)
    if report.errors:
        raise typer.Exit(1)


def main() -> None:
    app()
