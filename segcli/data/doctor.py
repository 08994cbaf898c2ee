"""The label doctor behind `segcli check`, and the pre-flight check `segcli train` runs.

It reads every image and mask of a semantic dataset and reports what would break or silently
spoil training (out-of-range ids, 0/255 binary masks, colour masks, size mismatches, EXIF
rotation, unreadable files, images without labels), each finding with its fix, plus a class
frequency table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segcli.data import IGNORE_INDEX
from segcli.data.images import exif_rotation
from segcli.data.labels import (
    binary_ids,
    binary_problem,
    out_of_range_problem,
    scaled_ids_problem,
    size_problem,
)
from segcli.data.sources import class_names_for, open_source
from segcli.errors import DataError

ERROR, WARNING, NOTE = "error", "warning", "note"


@dataclass(frozen=True)
class Finding:
    severity: str  # error: training would fail or learn the wrong thing; note: worth a look
    kind: str
    path: str
    detail: str


@dataclass
class Report:
    class_names: tuple[str, ...]
    images: int = 0
    findings: list[Finding] = field(default_factory=list)
    pixels: np.ndarray | None = None  # [K] labelled pixels per class
    image_counts: np.ndarray | None = None  # [K] images containing each class
    split_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]


def diagnose(
    data: str,
    num_classes: int | None = None,
    ignore_index: int = IGNORE_INDEX,
    splits: tuple[str, ...] = ("train", "val"),
    progress: Callable[[int, int], None] | None = None,
    binary: bool = False,
    via_attribute: str | None = None,
) -> Report:
    """Check every sample of the given splits of `data` (a dataset folder, of any format
    `--data` reads: instance formats are checked through their class maps)."""
    sources = {s: open_source(data, s, via_attribute=via_attribute) for s in splits}
    names = class_names_for(sources[splits[0]], num_classes, ignore_index, binary)
    k = len(names)
    report = Report(names, pixels=np.zeros(k, np.int64), image_counts=np.zeros(k, np.int64))
    report.split_sizes = {split: len(source) for split, source in sources.items()}
    total = sum(len(s) for s in sources.values())
    for source in sources.values():
        for index in range(len(source)):
            report.images += 1
            for finding in inspect_sample(source, index, k, ignore_index, report, binary):
                report.findings.append(finding)
            if progress:
                progress(report.images, total)
    return report


def inspect_sample(
    source,
    index: int,
    num_classes: int,
    ignore_index: int,
    report: Report | None = None,
    binary: bool = False,
) -> list[Finding]:
    """Findings for one sample; adds its class counts to `report` when given."""
    try:
        sample = source.load(index)
    except DataError as exc:
        path, _, problem = str(exc).partition(": ")
        return [Finding(ERROR, _kind_of(problem), path, problem + _fix_unreadable(problem))]
    mask_path = str(sample.get("mask_path", sample["name"]))
    image, mask = sample["image"], sample["mask"]
    if binary:  # what training reads (SemanticSamples)
        mask = binary_ids(mask)
    findings = _orientation_findings(sample, image.shape, mask.shape)
    problem = size_problem(mask.shape, image.shape)
    if problem:
        return findings or [Finding(ERROR, "size mismatch", mask_path, problem)]
    values = np.unique(mask)
    label_checks = [
        ("scaled ids", scaled_ids_problem(values, num_classes, ignore_index)),
        ("out of range", out_of_range_problem(values, num_classes, ignore_index)),
    ]
    if not binary:
        label_checks.insert(0, ("binary 0/255 mask", binary_problem(values, ignore_index)))
    for kind, problem in label_checks:
        if problem:
            return findings + [Finding(ERROR, kind, mask_path, problem)]
    if not any(0 < v < num_classes for v in values):
        findings.append(
            Finding(
                NOTE,
                "no labels",
                mask_path,
                "no pixel of any class but 0 (background) or ignore; "
                "check the mask, or leave the image out if that is intended",
            )
        )
    if report is not None:
        labelled = mask[mask < num_classes]
        report.pixels += np.bincount(labelled.ravel(), minlength=num_classes)[:num_classes]
        report.image_counts[values[values < num_classes].astype(np.int64)] += 1
    return findings


def _orientation_findings(sample: dict, image_shape: tuple, mask_shape: tuple) -> list[Finding]:
    path = sample.get("image_path")
    tag = exif_rotation(path) if path else None
    if tag is None:
        return []
    turned = tag in (5, 6, 7, 8)  # these tags swap width and height
    raw_shape = (image_shape[1], image_shape[0]) if turned else image_shape[:2]
    if turned and tuple(mask_shape[:2]) == tuple(raw_shape):
        return [
            Finding(
                ERROR,
                "EXIF rotation",
                str(path),
                f"EXIF orientation {tag}: the mask fits the stored pixels, but segcli "
                "(like labelme) shows the image rotated; rotate the mask, or re-save the "
                "image without the orientation tag",
            )
        ]
    return [
        Finding(
            NOTE,
            "EXIF rotation",
            str(path),
            f"EXIF orientation {tag}: segcli applies it (as labelme does); the mask fits "
            "the rotated image",
        )
    ]


def _kind_of(problem: str) -> str:
    if "RGB mask" in problem:
        return "colour mask"
    return "unreadable file" if "decode" in problem or "not found" in problem else "bad file"


def _fix_unreadable(problem: str) -> str:
    return "" if "RGB mask" in problem else "; re-export the file or leave it out of the split"


def preflight(source, num_classes: int, ignore_index: int, binary: bool, count: int = 16) -> None:
    """What `segcli train` runs before the first step: the doctor on the first `count` samples
    (in file order), stopping at the first error with the doctor's words."""
    for index in range(min(count, len(source))):
        for finding in inspect_sample(source, index, num_classes, ignore_index, binary=binary):
            if finding.severity == ERROR:
                raise DataError(
                    f"{finding.path}: {finding.detail} (segcli check --data "
                    "<folder> lists every such file)"
                )
