"""Datasets, samples and loaders: every `--data` form read into one shape of sample."""

IGNORE_INDEX = 255  # the label value no loss or score counts (PASCAL VOC's "void" border)
