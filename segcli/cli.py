"""The `segcli` command line: each subcommand parses its options and calls one function."""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from segcli.cli_flags import with_setting_flags
from segcli.data import IGNORE_INDEX
from segcli.errors import SegcliError
from segcli.progress import shown_on
from segcli.torch_files import check_torch_file

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, evaluate, run and benchmark the classic segmentation models.",
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        packages = ("segcli", "torch", "torchvision")
        console.print("  ".join(f"{name} {version(name)}" for name in packages), highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="segcli, torch and torchvision."
        ),
    ] = False,
):
    """Train, evaluate, run and benchmark the classic segmentation models."""


def user_errors(command):
    """Turn a SegcliError into one line on stderr and its exit code (2, or 130 for Ctrl-C)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with shown_on(console):
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
    pq = "pq"


@app.command("recipes")
@user_errors
def recipes_command():
    """List the recipes: name, task, paper, parameters (VOC 21 / COCO 81 classes)."""
    from segcli.commands.recipes import recipes_table

    console.print(recipes_table())


@app.command("train")
@user_errors
@with_setting_flags  # --data, --epochs, ...: the TrainConfig fields declared with flag()
def train_command(
    recipe: Annotated[str, typer.Argument(help="Recipe name (see `segcli recipes`).")],
    *,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value overrides.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="A saved config.yaml to start from (above the recipe's defaults, below flags)."
        ),
    ] = None,
    show_config: Annotated[
        bool,
        typer.Option(
            "--show-config", help="Print every setting, its value and its origin; train nothing."
        ),
    ] = False,
    **flags: Any,
):
    """Train RECIPE (no --data: on the built-in shapes data)."""
    from segcli.commands import train
    from segcli.recipe import get_recipe

    run = train.show_config if show_config else train.train
    run(get_recipe(recipe), {**flags, "config": config}, set_ or [], console)


CRF_HELP = "Dense CRF refinement (DeepLab v1/v2); needs the crf extra (pydensecrf2)."
CRF_PARAM_HELP = "CRF key=value: w1, theta_alpha, theta_beta, w2, theta_gamma, iterations."
SUPERPIXELS_HELP = (
    "Semantic: majority vote of the prediction in about N SLIC superpixels (compactness 10)."
)
PANOPTIC_HELP = (
    "A second checkpoint to fuse with CHECKPOINT (Panoptic FPN): one semantic (stuff), one "
    "instance (things), in either order: --panoptic SEMANTIC.pt INSTANCE.pt ..."
)


@app.command("eval")
@user_errors
def eval_command(
    checkpoint: Annotated[
        Path | None, typer.Argument(help="Default: best.pt of the latest run.")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Dataset; default: the checkpoint's.")] = None,
    metric: Annotated[
        Metric | None,
        typer.Option(help="Score to report (default: miou, or mask-ap; box-ap for box results)."),
    ] = None,
    pred: Annotated[Path | None, typer.Option(help="Folder of predicted label PNGs.")] = None,
    gt: Annotated[Path | None, typer.Option(help="Folder of ground-truth label PNGs.")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Classes, with --pred/--gt.")] = None,
    ignore_index: Annotated[int, typer.Option(help="Ignored label (--pred/--gt).")] = IGNORE_INDEX,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the scores as JSON.")
    ] = None,
    gt_json: Annotated[
        Path | None, typer.Option(help="COCO annotation file, with --pred-json (no model).")
    ] = None,
    pred_json: Annotated[Path | None, typer.Option(help="COCO results file to score.")] = None,
    save_json: Annotated[
        Path | None, typer.Option(help="Write the COCO results (instance checkpoints).")
    ] = None,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta", help="Semantic: average multi-scale and flipped logits (DeepLab v3 4.3)."
        ),
    ] = False,
    tta_scale: Annotated[
        list[float] | None,
        typer.Option("--tta-scale", help="A --tta scale (repeat; default 0.5 .. 1.75)."),
    ] = None,
    tta_flip: Annotated[
        bool, typer.Option("--tta-flip/--no-tta-flip", help="--tta: flipped inputs too.")
    ] = True,
    crf: Annotated[bool, typer.Option("--crf", help=CRF_HELP)] = False,
    crf_param: Annotated[list[str] | None, typer.Option("--crf-param", help=CRF_PARAM_HELP)] = None,
    superpixels: Annotated[int | None, typer.Option(help=SUPERPIXELS_HELP)] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Model option key=value, e.g. output_stride=8."),
    ] = None,
    gt_panoptic: Annotated[
        Path | None, typer.Option(help="COCO panoptic ground truth json (--metric pq).")
    ] = None,
    pred_panoptic: Annotated[Path | None, typer.Option(help="COCO panoptic results json.")] = None,
    gt_panoptic_dir: Annotated[
        Path | None, typer.Option(help="Ground-truth PNG folder; default: the json's stem.")
    ] = None,
    pred_panoptic_dir: Annotated[
        Path | None, typer.Option(help="Predicted PNG folder; default: the json's stem.")
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the evaluation plots: pr_curve.png and per_class_ap.png "
            "(instance), per_class_iou.png and confusion.png (semantic)."
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write one self-contained HTML page: scores, per-class table, plots and the "
            "worst images (ground truth, prediction, errors)."
        ),
    ] = None,
    report_worst: Annotated[int, typer.Option(help="Worst images shown in --report.")] = 8,
    panoptic: Annotated[
        Path | None, typer.Option(help=PANOPTIC_HELP + " PQ on the shapes val split.")
    ] = None,
):
    """Evaluate a checkpoint on a val split, saved label PNGs with --pred/--gt, COCO results
    with --gt-json/--pred-json, or COCO panoptic results with --gt-panoptic/--pred-panoptic."""
    from segcli.commands import eval_modes as modes
    from segcli.report.eval_outputs import check_output_paths

    metric = metric and metric.value
    panoptic_files = (gt_panoptic, pred_panoptic, gt_panoptic_dir, pred_panoptic_dir)
    model_flags = tta or crf or tta_scale or crf_param or set_ or superpixels is not None
    if panoptic is not None:
        others = (data not in (None, "shapes"), pred, gt, gt_json, pred_json, save_json, set_)
        predict = modes.predictor(tta, tta_scale, tta_flip, crf, crf_param, superpixels)
        others += (*panoptic_files, plots, report)
        paths = (panoptic, checkpoint)
        return modes.eval_fused(paths, metric, device, predict, json_out, others, console)
    if metric == "pq" or any(panoptic_files):
        others = (checkpoint, data, pred, gt, gt_json, pred_json, save_json, model_flags)
        return modes.eval_panoptic_files(panoptic_files, metric, json_out, any(others), console)
    check_output_paths(plots, report, report_worst)
    worst = report_worst if report else 0
    if gt_json or pred_json:  # no model: torch is not imported
        scored = modes.score_result_files(gt_json, pred_json, metric, model_flags, worst)
        facts = [("ground truth", str(gt_json)), ("results", str(pred_json))]
    elif pred or gt:
        scored = modes.score_label_folders(
            pred, gt, num_classes, ignore_index, model_flags, worst, metric
        )
        facts = [("predictions", str(pred)), ("ground truth", str(gt))]
    else:
        from segcli.engine import run_dirs

        path = check_torch_file(
            checkpoint or run_dirs.latest_run(needs="best.pt") / "best.pt", "checkpoint"
        )
        predict = modes.predictor(tta, tta_scale, tta_flip, crf, crf_param, superpixels)
        scored = modes.score_checkpoint(
            path, data, device, workers, predict, set_ or [], save_json, worst, metric
        )
        console.print(f"checkpoint: {path}", highlight=False)
        facts = [("checkpoint", str(path)), ("data", data or "the checkpoint's")]
    modes.show_scores(scored, metric, json_out, (plots, report, facts), console, err_console)


@app.command("infer")
@user_errors
def infer_command(
    checkpoint: Annotated[Path, typer.Argument(help="A best.pt or last.pt.")],
    sources: Annotated[list[Path], typer.Argument(help="Images, videos or folders of them.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/infer"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    crf: Annotated[bool, typer.Option("--crf", help=CRF_HELP)] = False,
    crf_param: Annotated[list[str] | None, typer.Option("--crf-param", help=CRF_PARAM_HELP)] = None,
    superpixels: Annotated[int | None, typer.Option(help=SUPERPIXELS_HELP)] = None,
    score_threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Instance models: lowest score drawn and saved (0.5)."),
    ] = None,
    splash: Annotated[
        bool, typer.Option("--splash", help="Instance models: colour splash (grey elsewhere).")
    ] = False,
    panoptic: Annotated[Path | None, typer.Option(help=PANOPTIC_HELP)] = None,
):
    """Semantic: <stem>.png (class ids) and <stem>_overlay.jpg. Instance: <stem>_overlay.jpg,
    results.json (COCO) and, with --splash, <stem>_splash.jpg. Videos (mp4, avi): an annotated
    video <stem>_overlay (or _splash) of the same format. With --panoptic: panoptic/<stem>.png
    (segment ids), one panoptic.json (COCO panoptic) and <stem>_overlay.jpg."""
    for path in (checkpoint, panoptic):
        if path is not None:
            check_torch_file(path, "checkpoint")
    from segcli.commands.eval_modes import predictor
    from segcli.commands.infer import infer
    from segcli.errors import ConfigError

    predict = predictor(False, None, False, crf, crf_param, superpixels)
    if panoptic is None:
        written = infer(checkpoint, sources, out, device, console, predict, score_threshold, splash)
    elif splash:
        raise ConfigError("--splash applies to an instance checkpoint alone, not --panoptic")
    else:
        from segcli.commands.panoptic import infer_panoptic

        paths = (panoptic, checkpoint)  # the order of `infer --panoptic A.pt B.pt`
        written = infer_panoptic(paths, sources, out, device, console, predict, score_threshold)
    console.print(f"wrote {len(written)} prediction(s) and overlays to {out}", highlight=False)


@app.command("check")
@user_errors
def check_command(
    data: Annotated[str, typer.Option(help="Dataset folder to check.")],
    num_classes: Annotated[int | None, typer.Option(help="Classes (default: dataset's).")] = None,
    ignore_index: Annotated[int, typer.Option(help="Label value that is ignored.")] = IGNORE_INDEX,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="How train reads the data: binary, ignore_index, num_classes, via_attribute.",
        ),
    ] = None,
):
    """The label doctor: find label problems before any GPU time (exit 1 if errors). Reads
    every format --data does; instance data is checked through its class map."""
    from segcli.commands.check import run_check

    report = run_check(data, num_classes, ignore_index, console, set_ or [])
    if report.errors:
        raise typer.Exit(1)


@app.command("convert-labelme")
@user_errors
def convert_labelme_command(
    folder: Annotated[Path, typer.Argument(help="Folder of labelme .json files.")],
    out: Annotated[
        Path | None, typer.Option(help="Output folder; default: DIR_converted beside DIR.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="labels.txt (labelme's __ignore__/_background_ header or a plain list)."),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Share of images in the val split (0: every image in train).")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the train/val split.")] = 0,
    noviz: Annotated[bool, typer.Option("--noviz", help="Write no overlay images.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output folder.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip bad files and shapes, report them.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(help="Processes (default: all cores; 0: this process).")
    ] = None,
):
    """Convert a labelme folder to VOC masks (class and object PNGs) and COCO instances.

    The output is built in a hidden folder beside it and renamed into place when complete;
    a failure, Ctrl-C or SIGTERM leaves no partial output (exit 2, 130 or 143).
    """
    from segcli.data.labelme.convert import convert_labelme

    convert_labelme(
        folder,
        out,
        labels,
        val_fraction=val_fraction,
        seed=seed,
        viz=not noviz,
        overwrite=overwrite,
        skip_invalid=skip_invalid,
        workers=workers,
        console=console,
    )


@app.command("benchmark")
@user_errors
def benchmark_command(
    recipe: Annotated[str, typer.Argument(help="Recipe name (see `segcli recipes`).")],
    train: Annotated[
        bool, typer.Option("--train/--fps", help="Training images/s, or inference fps.")
    ] = False,
    img_size: Annotated[
        int | None,
        typer.Option(
            help="Input image size, also the network's for models that resize their input "
            "(size, min_size/max_size, unless --set names them); default: the recipe's."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per call.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    warmup: Annotated[int, typer.Option(help="Untimed calls first.")] = 10,
    iters: Annotated[int, typer.Option(help="Timed calls.")] = 50,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Weights; default: random, VOC 21 / COCO 81 classes.")
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(help="A variant of the recipe, e.g. YOLACT's fast or standard (NMS)."),
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Every variant of the recipe side by side.")
    ] = False,
    nms: Annotated[str | None, typer.Option(hidden=True)] = None,  # deprecated: --variant
    compare_nms: Annotated[bool, typer.Option(hidden=True)] = False,  # deprecated: --compare
    set_: Annotated[list[str] | None, typer.Option("--set", help="Model option key=value.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON.")
    ] = None,
):
    """Inference fps, latency, parameters, GFLOPs and peak memory of RECIPE (or --train)."""
    from segcli.recipe import get_recipe

    get_recipe(recipe)  # an unknown name is one line before torch is imported
    if nms or compare_nms:
        message = "warning: --nms and --compare-nms are deprecated; use --variant and --compare"
        err_console.print(message, highlight=False)
    from segcli.commands.benchmark import BenchSpec, benchmark

    spec = BenchSpec(
        recipe,
        train=train,
        img_size=img_size,
        batch_size=batch_size,
        device=device,
        warmup=warmup,
        iters=iters,
        checkpoint=checkpoint,
        variant=variant or nms,
        sets=tuple(set_ or []),
    )
    benchmark(spec, compare or compare_nms, json_out, console)


@app.command("superpixels")
@user_errors
def superpixels_command(
    sources: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    n_segments: Annotated[int, typer.Option(help="Approximate number of superpixels.")] = 100,
    compactness: Annotated[
        float, typer.Option(help="Colour vs space balance (higher: more regular).")
    ] = 10.0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/superpixels"),
    gt: Annotated[
        Path | None, typer.Option(help="Folder of ground-truth masks (class ids), by file stem.")
    ] = None,
    tolerance: Annotated[int, typer.Option(help="Boundary recall distance d, pixels.")] = 2,
    ignore_index: Annotated[int, typer.Option(help="Mask value that is ignored.")] = IGNORE_INDEX,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the per-image results as JSON.")
    ] = None,
):
    """SLIC superpixels (Achanta et al. 2012): <stem>.png (16-bit superpixel ids) and
    <stem>_overlay.jpg; with --gt, boundary recall and undersegmentation error per image."""
    from segcli import io
    from segcli.commands.superpixels import SlicSpec, mean_row, run_superpixels

    spec = SlicSpec(n_segments, compactness, tolerance, ignore_index)
    rows = run_superpixels(sources, spec, out, gt, console)
    console.print(f"wrote {len(rows)} superpixel map(s) and overlays to {out}", highlight=False)
    if json_out:
        doc = {**vars(spec), "images": rows, "mean": mean_row(rows)}
        io.write_json(json_out, doc)


@app.command("export")
@user_errors
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A best.pt or last.pt.")],
    format_: Annotated[str, typer.Option("--format", help="onnx or torchscript.")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(help="File to write; default: the checkpoint's name with .onnx/.torchscript."),
    ] = None,
    img_size: Annotated[
        int | None, typer.Option(help="Side of the test (and trace) image; default: the run's.")
    ] = None,
    dynamic: Annotated[
        bool, typer.Option("--dynamic", help="Free batch, height and width (checked at 2 sizes).")
    ] = False,
):
    """Export to ONNX (opset 17) or TorchScript, then run the file on a built-in image and
    compare it with PyTorch. The largest |difference| of each output must stay within 1e-4 of
    the output's largest |value| (logits; at least 1e-4), 1e-3 (scores), 1e-2 (mask
    probabilities) or 1e-2 px (boxes); else nothing is written and the exit code is 3. Inputs
    are RGB in [0,1]. YOLACT exports up to its coefficients and prototypes, with assembly and
    NMS outside (segcli.recipes.nets.yolact_export)."""
    check_torch_file(checkpoint, "checkpoint")
    from segcli.commands.export import export_checkpoint

    export_checkpoint(checkpoint, format_, out, img_size, dynamic, console)


def main() -> None:
    app()
