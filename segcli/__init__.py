"""segcli: the classic segmentation models, one recipe per paper, on one shared pipeline."""

__version__ = "0.1.0"
