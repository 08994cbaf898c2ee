"""Detection and mask operators that are a paper's own idea (e.g. YOLACT's Fast NMS)."""
