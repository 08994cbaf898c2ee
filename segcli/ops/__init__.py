"""Operators that are a paper's own idea: YOLACT's Fast NMS (segcli.ops.nms), the Panoptic FPN
fusion (segcli.ops.panoptic), superpixel voting (segcli.ops.superpixels). Import the module you
need: the package itself imports nothing, so the torch-free ones stay light."""
