"""From the check pass to a plan: the classes, what each file converts, and every problem.

Everything a conversion can stumble on is found here, before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segcli.data.labelme.classes import Classes, discover_classes
from segcli.data.labelme.paint import MAX_INSTANCES, instance_ids, instance_key
from segcli.data.labelme.worker import FileCheck


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str
    shape: int | None = None  # the shape's index; None: the whole file
    label: str = ""

    @property
    def where(self) -> str:
        if self.shape is None:
            return "whole file"
        return f"shape {self.shape} ({self.label!r})" if self.label else f"shape {self.shape}"

    def line(self) -> str:
        if self.shape is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}: {self.where}: {self.reason}"


@dataclass
class Plan:
    classes: Classes
    files: list[tuple[Path, frozenset[int]]] = field(default_factory=list)  # (json, skipped)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def skipped_files(self) -> int:
        return sum(p.shape is None for p in self.problems)

    @property
    def skipped_shapes(self) -> int:
        return sum(p.shape is not None for p in self.problems)


def make_plan(checks: Sequence[FileCheck], classes: Classes | None, labels_name: str) -> Plan:
    """`classes` from --labels (named `labels_name` in messages), or None to discover them."""
    readable = [c for c in checks if c.problem is None]
    if classes is None:
        classes = discover_classes(label for c in readable for _, label, _ in c.shapes)
    plan = Plan(classes)
    for check in checks:
        if check.problem is not None:
            plan.problems.append(Problem(check.path, check.problem))
            continue
        problems = [Problem(check.path, p.reason, p.index, p.label) for p in check.shape_problems]
        keys = []
        for index, label, group_id in check.shapes:
            if classes.id_of(label) is None:
                reason = f"label {label!r} is not in {labels_name}"
                problems.append(Problem(check.path, reason, index, label))
            else:
                keys.append(instance_key(label, group_id, index, classes))
        count = max(instance_ids(keys), default=0)
        too_many = count > MAX_INSTANCES  # the file is left out; its bad shapes still listed
        if too_many:
            reason = f"{count} instances; a uint8 object PNG holds at most {MAX_INSTANCES}"
            plan.problems.append(Problem(check.path, reason))
        plan.problems += sorted(problems, key=lambda p: p.shape)
        if too_many:
            continue
        plan.files.append((check.path, frozenset(p.shape for p in problems)))
        if check.orientation:
            plan.notes.append(
                f"{check.path}: EXIF orientation {check.orientation} applied (the annotation "
                "is read in the turned frame, as labelme shows the image)"
            )
    return plan
