"""Detection and mask operators that are a paper's own idea (e.g. YOLACT's Fast NMS)."""

from segcli.ops.nms import fast_nms

__all__ = ["fast_nms"]
