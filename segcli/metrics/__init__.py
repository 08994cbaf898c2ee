"""Metrics: semantic scores from a confusion matrix, COCO AP through pycocotools."""

from segcli.metrics.semantic import SegMetrics, scores_from_confusion

__all__ = ["SegMetrics", "scores_from_confusion"]
