"""Does an exported model reproduce PyTorch? The largest absolute difference of each output,
against a tolerance stated per kind of output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from rich.table import Table

from segcli.errors import SegcliError

# Largest absolute difference allowed, per kind of output. Both sides run float32 on the CPU,
# with other kernels and summation orders (DESIGN.md, export, has the measured differences).
# Unbounded outputs are measured against their own scale: 1e-4 of the largest |PyTorch value|
# (at least 1e-4), since float32 itself is off by ~1e-6 of it after a hundred layers.
TOLERANCES = {
    "logits": 1e-4,  # relative: semantic logits and raw network outputs (YOLACT's heads)
    "boxes": 1e-2,  # pixels
    "scores": 1e-3,  # probabilities: scores, class scores, predicted mask IoU
    "masks": 1e-2,  # mask probabilities
}
RELATIVE = {"logits"}
KIND_OF = {"boxes": "boxes", "masks": "masks"}
UNIT_SUFFIXES = ("scores", "ious")  # any detection output so named lies in [0, 1]


class ExportError(SegcliError):
    """The model could not be exported, or the export does not run (exit code 3)."""

    exit_code = 3


class ParityError(ExportError):
    """The exported model does not give PyTorch's outputs within the tolerance (exit code 3)."""


@dataclass(frozen=True)
class Difference:
    name: str
    value: float  # largest absolute difference from PyTorch
    scale: float = 1.0  # largest absolute PyTorch value of the output

    @property
    def kind(self) -> str:
        if self.name in KIND_OF:
            return KIND_OF[self.name]
        return "scores" if self.name.endswith(UNIT_SUFFIXES) else "logits"

    @property
    def tolerance(self) -> float:
        relative = self.kind in RELATIVE
        return TOLERANCES[self.kind] * (max(1.0, self.scale) if relative else 1.0)

    @property
    def ok(self) -> bool:
        return self.value <= self.tolerance  # NaN is not ok

    def __str__(self) -> str:
        unit = " px" if self.kind == "boxes" else ""
        return (
            f"{self.name} max |difference| {self.value:.1e}{unit}, tolerance {self.tolerance:.1e}"
        )


@dataclass(frozen=True)
class Check:
    """One comparison of the exported model with PyTorch, on one input."""

    shape: tuple[int, ...]
    differences: list[Difference]
    detections: int | None = None  # instance models: detections compared

    @property
    def title(self) -> str:
        found = "" if self.detections is None else f" ({self.detections} det.)"
        return "x".join(map(str, self.shape)) + found


def parity_table(checks: Sequence[Check], runtime: str) -> Table:
    """Outputs as rows, checks as columns: each largest absolute difference, its tolerance."""
    title = f"max |{runtime} - PyTorch| (tolerance)"
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("output")
    for check in checks:
        table.add_column(check.title, justify="right")
    for row in zip(*(c.differences for c in checks), strict=True):
        unit = " (px)" if row[0].kind == "boxes" else ""
        table.add_row(row[0].name + unit, *(f"{d.value:.1e} ({d.tolerance:.1e})" for d in row))
    return table


def tensor_differences(
    names: Sequence[str], reference: Sequence[torch.Tensor], outputs: Sequence
) -> list[Difference]:
    """One Difference per named output; a shape mismatch is an infinite difference."""
    diffs = []
    for name, ref, out in zip(names, reference, outputs, strict=True):
        out = torch.as_tensor(out)
        if out.shape != ref.shape:
            diffs.append(Difference(f"{name} (shape {list(out.shape)} != {list(ref.shape)})", 1e9))
        else:
            scale = float(ref.abs().max()) if ref.numel() else 0.0
            diffs.append(Difference(name, _max_abs(ref, out), scale))
    return diffs


def detection_differences(
    reference: Sequence[dict], exported: Sequence[dict]
) -> tuple[list[Difference], int]:
    """(the largest difference of every detection field, detections compared) over images.

    Each exported detection is paired with a reference one of the same label, closest in box
    and score: detections of (nearly) equal score may come in another order.
    """
    worst: dict[str, float] = {}
    for ref, got in zip(reference, exported, strict=True):
        n, m = len(ref["scores"]), len(got["scores"])
        if n != m:
            raise ParityError(f"the exported model found {m} detections, PyTorch {n}")
        pairs = pair_detections(ref, got)
        for key in ref:
            if key != "labels":
                value = _max_abs(ref[key], torch.as_tensor(got[key])[pairs]) if n else 0.0
                worst[key] = max(worst.get(key, 0.0), value)
    count = sum(len(r["scores"]) for r in reference)
    return [Difference(k, v) for k, v in worst.items()], count


def pair_detections(ref: dict, got: dict) -> torch.Tensor:
    """Index into `got` of each reference detection's partner: greedily the closest pair
    first (largest box coordinate difference plus score difference; another label never)."""
    boxes, scores = torch.as_tensor(got["boxes"]).float(), torch.as_tensor(got["scores"]).float()
    cost = (ref["boxes"].float()[:, None] - boxes[None]).abs().amax(-1)
    cost += (ref["scores"].float()[:, None] - scores[None]).abs()
    cost[ref["labels"][:, None] != torch.as_tensor(got["labels"])[None]] = float("inf")
    partner, taken = [-1] * len(cost), set()
    finite = cost.flatten().isfinite().tolist()
    for flat in cost.flatten().argsort().tolist():
        i, j = divmod(flat, cost.shape[1])
        if finite[flat] and partner[i] < 0 and j not in taken:
            partner[i] = j
            taken.add(j)
    if -1 in partner:
        raise ParityError("the exported model's detections have other labels than PyTorch's")
    return torch.tensor(partner, dtype=torch.long)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max())
