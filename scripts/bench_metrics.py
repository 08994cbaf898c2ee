"""SegMetrics vs a plain NumPy np.bincount confusion matrix, side by side in one run.

16 label maps of 512x512, 21 classes, ~2% ignore pixels, on the CPU. Prints both timings and
the ratio (issue 2's target: SegMetrics at least 3x faster).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from segcli.metrics import SegMetrics

K, SHAPE, REPEATS = 21, (16, 512, 512), 10


def numpy_confusion(pred: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """The usual reference implementation (e.g. the FCN and DeepLab evaluation scripts)."""
    keep = (target >= 0) & (target < k)
    return np.bincount(k * target[keep].astype(int) + pred[keep], minlength=k * k).reshape(k, k)


def best_time(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, K, SHAPE)
    target[:, :10] = 255
    pred = rng.integers(0, K, SHAPE)
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)

    metrics = SegMetrics(K)  # one accumulator over the dataset, as evaluation uses it

    def segmetrics():
        metrics.reset()
        metrics.update(pred_t, target_t)
        return metrics.confusion_matrix()

    assert (segmetrics().numpy() == numpy_confusion(pred, target, K)).all()
    t_numpy = best_time(lambda: numpy_confusion(pred, target, K))
    t_torch = best_time(segmetrics)
    print(
        f"labels: {SHAPE[0]} x {SHAPE[1]}x{SHAPE[2]}, {K} classes, int64, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"numpy np.bincount : {t_numpy * 1e3:8.2f} ms")
    print(f"SegMetrics (cpu)  : {t_torch * 1e3:8.2f} ms")
    print(f"ratio numpy/SegMetrics: {t_numpy / t_torch:.2f}x")


if __name__ == "__main__":
    main()
