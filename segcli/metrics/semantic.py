"""Semantic segmentation metrics from one confusion matrix summed over the whole dataset.

With n_ij the number of pixels of class i predicted as class j and t_i = sum_j n_ij (Long et al.,
"Fully Convolutional Networks for Semantic Segmentation", arXiv:1411.4038, section 4):
    pixel accuracy      sum_i n_ii / sum_i t_i
    mean accuracy       (1/K') sum_i n_ii / t_i
    mean IU             (1/K') sum_i n_ii / (t_i + sum_j n_ji - n_ii)
    frequency-weighted  (sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)
where a class whose denominator is 0 gets NaN and is left out of the means (K' counts the rest).
"""

from __future__ import annotations

import torch

from segcli.data import IGNORE_INDEX


class SegMetrics:
    """Accumulates the confusion matrix on the labels' device, without a host sync per batch.

    Labels are shifted by one and clamped into [0, span) so that one bincount sorts every pixel
    into class, ignored or out-of-range bins; out-of-range values are reported by compute().
    """

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX):
        if num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        if ignore_index is not None and not 0 <= ignore_index < 2**16:
            raise ValueError("ignore_index must be in [0, 65536) or None")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        # shifted ids: 0 = negative, 1..K = classes, ignore + 1, and span - 1 = anything larger
        self.span = max(num_classes, (ignore_index or 0) + 1) + 2
        self.hist: torch.Tensor | None = None
        self._work: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        self.hist = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add integer label maps of equal shape (any leading dimensions)."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
            )
        if pred.is_floating_point() or target.is_floating_point():
            raise TypeError("pred and target must be integer class ids (take argmax of logits)")
        n = self.span
        t, p = self._workspace(target.numel(), target.device)
        # In place on reused int32 buffers: fresh 4-byte-per-pixel tensors cost more in page
        # faults than the arithmetic. index = (t + 1) * n + (p + 1) after clamping.
        t.copy_(target.reshape(-1)).clamp_(-1, n - 2).mul_(n)
        p.copy_(pred.reshape(-1)).clamp_(-1, n - 2)
        index = t.add_(p).add_(n + 1)
        if index.is_cuda:  # CUDA bincount reads max() back to the host; index_add_ does not
            counts = torch.zeros(n * n, dtype=torch.int64, device=index.device)
            counts.index_add_(0, index, torch.ones_like(index, dtype=torch.int64))
        else:
            counts = torch.bincount(index, minlength=n * n)
        self.hist = counts if self.hist is None else self.hist.add_(counts)

    def _workspace(self, numel: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Two int32 buffers of `numel` elements, kept between updates."""
        work = self._work
        if work is None or work[0].numel() < numel or work[0].device != device:
            work = self._work = tuple(
                torch.empty(numel, dtype=torch.int32, device=device) for _ in range(2)
            )
        return work[0][:numel], work[1][:numel]

    def all_reduce(self, device: torch.device | str = "cpu") -> None:
        """Sum the counts over torch.distributed ranks (a no-op in a single process)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        if self.hist is None:
            self.hist = torch.zeros(self.span * self.span, dtype=torch.int64, device=device)
        dist.all_reduce(self.hist, op=dist.ReduceOp.SUM)

    def confusion_matrix(self) -> torch.Tensor:
        """[K, K] int64 on CPU: rows are targets, columns predictions; ignore pixels left out."""
        k, n, ignore = self.num_classes, self.span, self.ignore_index
        if self.hist is None:
            return torch.zeros(k, k, dtype=torch.int64)
        grid = self.hist.view(n, n).cpu()
        conf = grid[1 : k + 1, 1 : k + 1].clone()
        counted = conf.sum()
        if ignore is not None:
            counted += grid[ignore + 1].sum()
            if ignore < k:  # an ignored class id: drop its row from the matrix
                counted -= conf[ignore].sum()
                conf[ignore] = 0
        bad = int(grid.sum() - counted)
        if bad:
            raise ValueError(
                f"{bad} pixel(s) have a prediction or target outside [0, {k}) "
                f"that is not the ignore index {ignore}"
            )
        return conf

    def compute(self) -> dict:
        """pa, mpa, miou, fwiou (floats; NaN when nothing was counted), per_class_iou and
        per_class_acc (lists with NaN for classes whose denominator is 0)."""
        return scores_from_confusion(self.confusion_matrix())


def scores_from_confusion(conf: torch.Tensor) -> dict:
    """The FCN paper's four scores from a [K, K] confusion matrix (rows = targets)."""
    conf = conf.to(torch.float64)
    diag = conf.diag()
    t = conf.sum(1)
    union = t + conf.sum(0) - diag
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    acc = torch.where(t > 0, diag / t.clamp(min=1), nan)
    iou = torch.where(union > 0, diag / union.clamp(min=1), nan)
    total = t.sum()
    seen = ~iou.isnan()
    return {
        "pa": float(diag.sum() / total) if total > 0 else float("nan"),
        "mpa": float(acc.nanmean()),
        "miou": float(iou.nanmean()),
        "fwiou": float((t[seen] * iou[seen]).sum() / total) if total > 0 else float("nan"),
        "per_class_iou": iou.tolist(),
        "per_class_acc": acc.tolist(),
    }
