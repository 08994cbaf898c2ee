"""Metrics: semantic scores from a confusion matrix, COCO AP through faster-coco-eval.

The semantic names are loaded on first use, so that `segcli.metrics.coco` (which
`segcli eval --gt-json` uses) does not import torch."""

import importlib

__all__ = ["SegMetrics", "scores_from_confusion"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("segcli.metrics.semantic"), name)
    raise AttributeError(f"module 'segcli.metrics' has no attribute {name!r}")
