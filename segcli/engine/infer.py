"""`segcli infer`: run a checkpoint on images (files or folders) and write the results."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import track

from segcli import viz
from segcli.data.images import list_images, read_image
from segcli.engine import checkpoint
from segcli.engine.device import select_device
from segcli.engine.semantic import predict_label
from segcli.errors import DataError


def collect_sources(sources: list[Path]) -> list[Path]:
    """Image files named directly or found (non-recursively) in named folders."""
    files = []
    for source in sources:
        if source.is_dir():
            found = list_images(source)
            if not found:
                raise DataError(f"{source}: no images in the folder")
            files.extend(found)
        elif source.is_file():
            files.append(source)
        else:
            raise DataError(f"{source}: no such file or folder")
    stems = [f.stem for f in files]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise DataError(f"{clash[0]}: several inputs share this file stem; outputs would collide")
    return files


def infer(
    checkpoint_path: Path,
    sources: list[Path],
    out_dir: Path,
    device_name: str = "auto",
    console: Console | None = None,
) -> list[Path]:
    """Write `<stem>.png` (palette PNG of class ids) and `<stem>_overlay.jpg` per image."""
    console = console or Console()
    files = collect_sources(sources)
    device = select_device(device_name)
    model, recipe, cfg, names, _ = checkpoint.restore_model(checkpoint_path, device)
    written = []
    for path in track(files, description="infer", console=console, disable=not console.is_terminal):
        image = read_image(path)
        label = predict_label(model, image, device)
        viz.save_label_png(out_dir / f"{path.stem}.png", label)
        ids = [int(i) for i in sorted(set(label.ravel().tolist())) if 0 < i < len(names)]
        blended = viz.draw_legend(viz.overlay(image, label), [names[i] for i in ids], ids)
        viz.save_jpeg(out_dir / f"{path.stem}_overlay.jpg", blended)
        written.append(out_dir / f"{path.stem}.png")
    return written
