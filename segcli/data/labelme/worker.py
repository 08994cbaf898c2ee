"""The two passes over one labelme file, run in worker processes: `check_file` (parse, decode,
verify; writes nothing) and `convert_file` (paint and write into the staging folder).

Both take and return small picklable values; images and masks never cross processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segcli.data.labelme.classes import Classes
from segcli.data.labelme.coco import instance_annotations
from segcli.data.labelme.image import load_image
from segcli.data.labelme.paint import paint
from segcli.data.labelme.parse import ShapeProblem, read_labelme
from segcli.data.labelme.rasterise import extent_problem
from segcli.data.labelme.writers import write_image_files
from segcli.errors import DataError


@dataclass(frozen=True)
class FileCheck:
    """What the check pass learned about one labelme file."""

    path: Path
    problem: str | None  # why the whole file cannot be converted
    shapes: tuple[tuple[int, str, int | None], ...] = ()  # (index, label, group_id), valid ones
    shape_problems: tuple[ShapeProblem, ...] = ()
    orientation: int | None = None  # EXIF orientation applied to the image
    image_path: Path | None = None  # the image file read; None for embedded imageData


def check_file(path: Path) -> FileCheck:
    try:
        parsed = read_labelme(path)
        image = load_image(path, parsed.record)
    except DataError as exc:
        return FileCheck(path, str(exc).removeprefix(f"{path}: "))
    height, width = image.rgb.shape[:2]
    shapes, problems = [], list(parsed.problems)
    for shape in parsed.shapes:  # found here, so the write pass never draws such a shape
        reason = extent_problem(shape, height, width)
        if reason is None:
            shapes.append((shape.index, shape.label, shape.group_id))
        else:
            problems.append(ShapeProblem(shape.index, shape.label, reason))
    return FileCheck(path, None, tuple(shapes), tuple(problems), image.orientation, image.path)


@dataclass(frozen=True)
class Job:
    path: Path
    skip: frozenset[int]  # indices of the shapes left out (--skip-invalid)
    classes: Classes
    folder: Path  # the staging folder
    viz: bool


@dataclass(frozen=True)
class FileResult:
    stem: str
    height: int
    width: int
    annotations: list[dict]  # COCO annotations without ids
    empty: list[str]  # labels of instances with no pixel inside the image

    @property
    def notes(self) -> list[str]:
        return [
            f"instance {label!r} has no pixel inside the image; left out of annotations.json"
            for label in self.empty
        ]


def convert_file(job: Job) -> FileResult:
    parsed = read_labelme(job.path)
    image = load_image(job.path, parsed.record)
    height, width = image.rgb.shape[:2]
    shapes = [s for s in parsed.shapes if s.index not in job.skip]
    painting = paint(shapes, job.classes, height, width)
    write_image_files(job.folder, job.path.stem, image, painting, job.classes, job.viz)
    annotations, empty = instance_annotations(painting.instances)
    return FileResult(job.path.stem, height, width, annotations, empty)
