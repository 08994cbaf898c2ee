"""`segcli export` of every recipe: the largest |exported - PyTorch| of each output and the
export time, as a markdown table (the figures of DESIGN.md's export bullet).

Without checkpoints each recipe is built as `segcli train RECIPE` builds it on the built-in data
(the quick profile; `--paper`: the paper's model) with random weights, its zero-initialised
layers (FCN's scores) made random too, so no output is trivially zero; `--checkpoint` exports
trained ones instead. The largest |PyTorch output| is given beside each difference for scale.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from rich.console import Console

from segcli.commands.export import export_checkpoint
from segcli.config import resolve_config
from segcli.data.shapes import CLASS_NAMES
from segcli.engine import checkpoint
from segcli.export.parity import ParityError
from segcli.recipe import get_recipe, list_recipes


def random_checkpoint(path: Path, name: str, paper: bool) -> Path:
    recipe = get_recipe(name)
    cfg = resolve_config(recipe, {}, quick=not paper)
    torch.manual_seed(0)
    model = recipe.build_model(len(CLASS_NAMES), **cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.01)
    payload = {"model": model.state_dict(), "recipe": name, "task": recipe.task,
               "config": cfg.to_dict(), "class_names": list(CLASS_NAMES)}  # fmt: skip
    checkpoint.save(path, payload)
    return path


def largest_output(path: Path, img_size: int | None) -> float:
    """The largest |logit| (semantic) or box coordinate (instance) PyTorch gives on the test
    image: the scale the differences are measured against."""
    from segcli.commands.export import test_images
    from segcli.export.forms import NormalisedSegmenter

    model, recipe, cfg, _, _ = checkpoint.restore_model(path, "cpu")
    image = test_images(img_size or cfg.img_size, 1)[0]
    with torch.no_grad():
        if recipe.task == "semantic":
            return float(NormalisedSegmenter(model).eval()(image[None]).abs().max())
        boxes = model([image])[0]["boxes"]
        return float(boxes.abs().max()) if len(boxes) else 0.0


def row(name: str, fmt: str, scale: float, result) -> str:
    diffs = "; ".join(
        f"{c.title}: " + ", ".join(f"{d.name} {d.value:.1e}" for d in c.differences)
        for c in result.checks
    )
    return f"| `{name}` | {fmt} | {scale:.3g} | {diffs} | {result.seconds:.1f} s |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=None)
    parser.add_argument("--checkpoint", nargs="*", default=[], help="trained checkpoints")
    parser.add_argument("--formats", nargs="*", default=["onnx", "torchscript"])
    parser.add_argument("--paper", action="store_true", help="the paper's models (slow)")
    parser.add_argument("--img-size", type=int, default=None)
    parser.add_argument("--dynamic", action="store_true")
    args = parser.parse_args()
    quiet = Console(quiet=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            paths = [Path(p) for p in args.checkpoint]
        else:
            names = args.recipes or [r.name for r in list_recipes()]
            paths = [random_checkpoint(Path(tmp) / f"{n}.pt", n, args.paper) for n in names]
        for path in paths:
            name = checkpoint.load(path)["recipe"]
            scale = largest_output(path, args.img_size)
            for fmt in args.formats:
                out = Path(tmp) / f"{name}.{fmt}"
                try:
                    result = export_checkpoint(path, fmt, out, args.img_size, args.dynamic, quiet)
                except ParityError as exc:  # the row says which output and by how much
                    rows.append(f"| `{name}` | {fmt} | {scale:.3g} | failed: {exc} | |")
                else:
                    rows.append(row(name, fmt, scale, result))
                print(rows[-1], flush=True)
    print("\n| recipe | format | largest PyTorch output | max abs difference | export time |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
