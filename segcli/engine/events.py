"""TensorBoard event files in the run folder (torch.utils.tensorboard): losses and learning rate
per logged step, validation scores, and sample overlays at each validation."""

from __future__ import annotations

import math
from numbers import Real
from pathlib import Path

import numpy as np

from segcli.engine.stopping import sigterm_held


class Events:
    """A SummaryWriter when `enabled` and tensorboard is installed; otherwise nothing (and,
    when asked for but missing, one warning saying how to get it). A SIGTERM waits for the
    write under way."""

    def __init__(self, run_dir: Path, enabled: bool, log):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warn(
                "tensorboard is not installed, so no event files are written "
                "(pip install 'segcli[tensorboard]', or --set tensorboard=false)"
            )
            return
        self.writer = SummaryWriter(log_dir=str(run_dir))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def scalars(self, prefix: str, values: dict, step: int) -> None:
        """Every finite number of `values` as `prefix/name`."""
        if self.writer is None:
            return
        with sigterm_held():
            for name, value in values.items():
                if isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def images(self, prefix: str, named: list[tuple[str, np.ndarray]], step: int) -> None:
        """uint8 RGB images [H, W, 3] as `prefix/name`."""
        if self.writer is None:
            return
        with sigterm_held():
            for name, image in named:
                self.writer.add_image(f"{prefix}/{name}", image, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
