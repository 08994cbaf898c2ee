"""segcli: the classic segmentation models, one recipe per paper, on one shared pipeline.

`segcli.load`, `segcli.train` and `segcli.evaluate` are the Python API (segcli/api.py); they
load on first use, so `import segcli` stays light.
"""

__version__ = "0.1.0"
__all__ = ["load", "train", "evaluate"]


def __getattr__(name: str):
    if name in __all__:
        from segcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'segcli' has no attribute {name!r}")
