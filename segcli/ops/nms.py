"""Fast NMS: Bolya et al., "YOLACT: Real-time Instance Segmentation", arXiv:1904.02689, section 5.

Standard NMS walks the boxes of a class in score order and drops each box that overlaps a box
still kept. Fast NMS replaces the walk by one matrix: per class, the IoU matrix X [n, n] of the
top n boxes by score, its strict upper triangle (X_ij for i < j: i scores higher than j), and
the column maxima K_j = max_i X_ij; box j is kept when K_j <= threshold. A box that was itself
dropped still suppresses the boxes below it, so Fast NMS keeps a subset of what NMS keeps. The
classes are stacked into one [C, n, n] tensor: no Python loop runs over classes or boxes (on a
CPU a fixed 10-step loop runs over blocks of that tensor, each step batched over everything).
"""

from __future__ import annotations

import torch


def fast_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float = 0.5,
    top_k: int = 200,
) -> torch.Tensor:
    """Indices (LongTensor [M]) of the kept boxes, highest score first (ties: lower index first).

    boxes [N, 4] xyxy, scores [N], labels [N] integer class of each box. Per class only the
    top_k highest-scoring boxes compete; the others are dropped. top_k < 1 is a ValueError.
    """
    if top_k < 1:
        raise ValueError(f"fast_nms: top_k must be at least 1, got {top_k}")
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    by_score = scores.argsort(descending=True, stable=True)
    slots, valid = _top_k_per_class(by_score, labels, min(top_k, n))  # [C, T]
    suppressed = _suppressed(boxes[slots], iou_threshold)  # [C, T]
    keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    keep[slots[valid & ~suppressed]] = True
    return by_score[keep[by_score]]


def _top_k_per_class(
    by_score: torch.Tensor, labels: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the indices of its k best boxes in score order ([C, k]) and a mask of the
    real entries ([C, k]); padding repeats a real index and always sits after the real ones."""
    order = by_score[labels[by_score].argsort(stable=True)]  # by class, then by score
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    group = torch.repeat_interleave(torch.arange(len(counts), device=order.device), counts)
    rank = torch.arange(len(order), device=order.device) - (counts.cumsum(0) - counts)[group]
    taken = rank < k
    slots = torch.full((len(counts) * k,), -1, dtype=torch.long, device=order.device)
    slots[group[taken] * k + rank[taken]] = order[taken]
    valid = slots >= 0
    return slots.where(valid, order[0]).view(-1, k), valid.view(-1, k)


# The strict upper triangle of a class's [T, T] IoU matrix lies in the 10 blocks on and above
# the diagonal of a 4 x 4 grid of blocks: computing those skips 37.5% of the pairs that the full
# matrix would compute. On a GPU the 10 blocks of every class are one batch (few kernel
# launches); on a CPU each block is one batch over every class, so the temporaries stay small
# and warm in the cache instead of being fresh, page-faulting allocations of C x T x T floats
# (which made the all-blocks batch no faster than torchvision's NMS: scripts/bench_nms.py).
GRID = 4


def _suppressed(boxes: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """[C, T] True where the column max of the strict upper triangle of IoU exceeds the
    threshold. boxes [C, T, 4] xyxy, each row sorted by score."""
    c, t, _ = boxes.shape
    n = -(-t // GRID)  # block side; zero boxes pad T up to GRID * n and overlap nothing
    grid = torch.nn.functional.pad(boxes, (0, 0, 0, GRID * n - t)).view(c, GRID, n, 4)
    by_block = _column_max_by_block if boxes.device.type == "cpu" else _column_max_batched
    return by_block(grid, iou_threshold).view(c, -1)[:, :t] > 0


def _column_max_batched(grid: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """[C, GRID, n]: per box (column block, position) the max IoU excess over the
    higher-ranked boxes, from one batch of all blocks on and above the diagonal."""
    c, _, n, _ = grid.shape
    bi, bj = _block_pairs(grid.device)
    # excess[.., j, i] > 0 where IoU(box i, box j) > threshold: the max over the higher-ranked
    # boxes i is then a reduction over the last, contiguous dimension
    excess = _iou_excess(grid[:, bj].flatten(0, 1), grid[:, bi].flatten(0, 1), iou_threshold)
    excess = excess.view(c, len(bi), n, n)
    excess[:, :GRID].tril_(-1)  # diagonal blocks (listed first): only i < j counts
    column_max = excess.new_full((c, GRID, GRID, n), -1.0)
    column_max[:, bi, bj] = excess.amax(3)
    return column_max.amax(1)


def _column_max_by_block(grid: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """As _column_max_batched, one block (batched over every class) at a time."""
    column_max = grid.new_full(grid.shape[:3], -1.0)
    for j in range(GRID):
        for i in range(j + 1):
            excess = _iou_excess(grid[:, j], grid[:, i], iou_threshold)
            if i == j:
                excess.tril_(-1)
            torch.maximum(column_max[:, j], excess.amax(2), out=column_max[:, j])
    return column_max


def _block_pairs(device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row block, column block) of the blocks on and above the diagonal, diagonal first."""
    bi, bj = torch.triu_indices(GRID, GRID, device=device)
    order = torch.argsort((bi != bj).to(torch.int8), stable=True)
    return bi[order], bj[order]


def _iou_excess(rows: torch.Tensor, cols: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """[M, n, m], > 0 exactly where IoU(rows_i, cols_j) > iou_threshold. rows [M, n, 4], cols
    [M, m, 4] xyxy.

    IoU > t is tested as (1 + t) * inter - t * (area_i + area_j) > 0, which needs no division
    and leaves 0/0 (two empty boxes) unsuppressed as torchvision's NMS does. Only two [M, n, m]
    tensors are allocated and every later step is in place: on a CPU, allocating and streaming
    those temporaries is most of the cost.
    """
    k = 1 + iou_threshold
    excess = _minus_overlap(rows[..., 0] * k, rows[..., 2] * k, cols[..., 0] * k, cols[..., 2] * k)
    excess.mul_(_minus_overlap(rows[..., 1], rows[..., 3], cols[..., 1], cols[..., 3]))
    area_i = (rows[..., 2] - rows[..., 0]) * (rows[..., 3] - rows[..., 1]) * iou_threshold
    area_j = (cols[..., 2] - cols[..., 0]) * (cols[..., 3] - cols[..., 1]) * iou_threshold
    return excess.sub_(area_i[:, :, None]).sub_(area_j[:, None, :])


def _minus_overlap(lo: torch.Tensor, hi: torch.Tensor, lo2: torch.Tensor, hi2: torch.Tensor):
    """[M, n, m] minus the overlap length of the intervals [lo_i, hi_i] and [lo2_j, hi2_j].

    With centres c and half-lengths r, min(hi_i, hi2_j) - max(lo_i, lo2_j) equals
    min(r_i + r_j - |c_i - c_j|, 2 r_i, 2 r_j), which needs a single [M, n, m] tensor.
    """
    c, r = ((lo + hi) / 2)[:, :, None], ((hi - lo) / 2)[:, :, None]
    c2, r2 = ((lo2 + hi2) / 2)[:, None, :], ((hi2 - lo2) / 2)[:, None, :]
    d = torch.sub(c, c2).abs_().sub_(r).sub_(r2)
    return d.clamp_(max=0).clamp_(min=-2 * r).clamp_(min=-2 * r2)
