"""Where an instance model's inference time goes: preprocess, backbone+FPN, heads, NMS, mask
assembly/paste.

Generic over torchvision's detection models (children transform, backbone, rpn, roi_heads;
masks pasted by transform.postprocess) and one-stage models built alike (transform, backbone,
heads; masks assembled in forward): each top-level child's forward is a profiler range, NMS is
every `torchvision::nms` op and every range the model names in its `nms_labels` attribute (the
record_function labels around an NMS of its own), and what is left of the call (code outside
any child) is mask assembly and pasting. On CUDA the ranges synchronise, so they hold GPU time.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import defaultdict
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile, record_function

PREFIX = "segcli.stage::"
TOTAL = PREFIX + "total"
TORCHVISION_NMS = ("torchvision::nms",)  # the op torchvision.ops.nms and batched_nms run
STAGES = ("preprocess", "backbone+FPN", "heads", "NMS", "mask assembly/paste")


def stage_breakdown(
    model: torch.nn.Module, run: Callable[[], object], device: torch.device, repeats: int = 3
) -> dict[str, float]:
    """Milliseconds per call of `run` (which calls `model`) spent in each of STAGES."""
    nms_labels = (*TORCHVISION_NMS, *getattr(model, "nms_labels", ()))
    handles = _label_children(model, device)
    try:
        with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                with record_function(TOTAL):
                    run()
                    sync(device)
    finally:
        for handle in handles:
            handle.remove()
    stages = attribute(prof.events(), nms_labels)
    return {k: v / 1e3 / repeats for k, v in stages.items()}


def attribute(events, nms_labels: tuple[str, ...] = TORCHVISION_NMS) -> dict[str, float]:
    """Microseconds per stage from profiler events (FunctionEvent with cpu_parent links);
    `nms_labels`: the names of the ops and ranges that are NMS."""
    spans: dict[str, float] = defaultdict(float)  # per child range, and the total
    nms_in: dict[str, float] = defaultdict(float)  # NMS time inside each range
    for event in events:
        if event.name.startswith(PREFIX):
            spans[event.name] += event.cpu_time_total
        elif event.name in nms_labels and not _inside_nms(event, nms_labels):
            nms_in[_owner(event)] += event.cpu_time_total
    total = spans.pop(TOTAL, 0.0)
    # What no child range covers, less the NMS run there: mask assembly and pasting.
    rest = total - sum(spans.values()) - nms_in[TOTAL]
    preprocess = spans.pop(PREFIX + "transform", 0.0) - nms_in[PREFIX + "transform"]
    backbone = spans.pop(PREFIX + "backbone", 0.0) - nms_in[PREFIX + "backbone"]
    heads = sum(spans.values()) - sum(nms_in[name] for name in spans)
    nms = sum(nms_in.values())
    return dict(zip(STAGES, (preprocess, backbone, heads, nms, rest)))


def _label_children(model: torch.nn.Module, device: torch.device) -> list:
    """Forward hooks that open and close a profiler range named after each top-level child."""
    handles = []
    for name, child in model.named_children():
        ranges: list = []

        def enter(module, args, _name=name, _ranges=ranges):
            sync(device)
            _ranges.append(record_function(PREFIX + _name).__enter__())

        def leave(module, args, output, _ranges=ranges):
            sync(device)
            _ranges.pop().__exit__(None, None, None)

        handles += [child.register_forward_pre_hook(enter), child.register_forward_hook(leave)]
    return handles


def _inside_nms(event, nms_labels: tuple[str, ...]) -> bool:
    """Whether `event` runs within an NMS op or range (so its time is already counted)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in nms_labels:
            return True
        parent = parent.cpu_parent
    return False


def _owner(event) -> str:
    """The innermost stage range around `event` (TOTAL when it ran outside every child)."""
    parent = event.cpu_parent
    while parent is not None and not parent.name.startswith(PREFIX):
        parent = parent.cpu_parent
    return parent.name if parent is not None else TOTAL


@contextlib.contextmanager
def _native_stderr_silenced():
    """The profiler's C++ side logs start/stop lines (and, on a CUDA build without a GPU, a
    device-count error) straight to file descriptor 2; hide them from the benchmark's output."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def sync(device: torch.device) -> None:
    """Wait for the device (CUDA) to finish its queued work; nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
