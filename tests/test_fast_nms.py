"""segcli.ops.fast_nms: a hand-worked example, the subset property against torchvision's NMS,
and the edge cases (empty input, one class, ties, top_k)."""

import pytest
import torch
from torchvision.ops import batched_nms, box_iou, nms

from segcli.ops import nms as nms_module
from segcli.ops.nms import fast_nms


def test_worked_example_a_suppressed_box_still_suppresses():
    # Five 10x10 boxes; b1..b4 are class 1, b5 is class 2 (input order b1..b5 = index 0..4).
    #   b1 [  0,0, 10,10] 0.90   b2 [100,0,110,10] 0.80   b3 [102,0,112,10] 0.70
    #   b4 [105,0,115,10] 0.60   b5 [  1,0, 11,10] 0.95 (class 2)
    # Class 1 in score order b1, b2, b3, b4; strict upper triangle of its IoU matrix:
    #          b1   b2   b3                   b4
    #   b1      -    0    0                    0
    #   b2           -    80/(100+100-80)=.667 50/(100+100-50)=.333
    #   b3                -                    70/(100+100-70)=.538
    # Column maxima: b1 -, b2 0, b3 .667, b4 .538; threshold 0.5 keeps b1, b2 only. b3 is
    # dropped by b2 and, although dropped, still drops b4 (.538 > .5). Standard NMS keeps b4:
    # once b3 is gone, b4 only meets b2 (.333). b5 overlaps b1 by 90/110 = .818 but is of
    # another class, so it stays. Kept, by score: b5, b1, b2.
    boxes = torch.tensor(
        [[0, 0, 10, 10], [100, 0, 110, 10], [102, 0, 112, 10], [105, 0, 115, 10], [1, 0, 11, 10]],
        dtype=torch.float32,
    )
    scores = torch.tensor([0.90, 0.80, 0.70, 0.60, 0.95])
    labels = torch.tensor([1, 1, 1, 1, 2])
    kept = fast_nms(boxes, scores, labels, iou_threshold=0.5)
    assert kept.dtype == torch.long
    assert kept.tolist() == [4, 0, 1]
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == [4, 0, 1, 3]


def random_detections(seed: int, n: int = 300, classes: int = 5):
    """Boxes jittered around a few objects, so suppression chains are common."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(8, 2, generator=g) * 200
    pick = torch.randint(0, 8, (n,), generator=g)
    c = centres[pick] + torch.randn(n, 2, generator=g) * 8
    half = 10 + torch.rand(n, 2, generator=g) * 20
    boxes = torch.cat([c - half, c + half], 1)
    return boxes, torch.rand(n, generator=g), torch.randint(0, classes, (n,), generator=g)


def reference_fast_nms(boxes, scores, labels, threshold, top_k):
    """The definition, one class at a time: top_k by score, max IoU with any higher box."""
    kept = []
    for c in labels.unique():
        index = torch.where(labels == c)[0]
        index = index[scores[index].argsort(descending=True, stable=True)][:top_k]
        iou = box_iou(boxes[index], boxes[index]).triu(1)
        kept += index[iou.amax(0) <= threshold].tolist()
    return set(kept)


@pytest.mark.parametrize("seed", range(6))
def test_keeps_a_subset_of_standard_nms_per_class(seed):
    boxes, scores, labels = random_detections(seed)
    threshold = [0.3, 0.5, 0.7][seed % 3]
    kept = fast_nms(boxes, scores, labels, threshold, top_k=1000)
    assert set(kept.tolist()) == reference_fast_nms(boxes, scores, labels, threshold, 1000)
    for c in labels.unique():
        index = torch.where(labels == c)[0]
        standard = set(index[nms(boxes[index], scores[index], threshold)].tolist())
        mine = {i for i in kept.tolist() if labels[i] == c}
        assert mine <= standard
    assert len(kept) < len(batched_nms(boxes, scores, labels, threshold))  # chains happened
    assert (scores[kept].diff() <= 0).all()  # highest score first


def test_top_k_limits_each_class():
    boxes, scores, labels = random_detections(7, n=200, classes=3)
    boxes = torch.cat([torch.arange(200)[:, None] * 100.0 + torch.tensor([0, 0, 10, 10])])
    kept = fast_nms(boxes, scores, labels, 0.5, top_k=4)  # disjoint boxes: only top_k limits
    assert sorted(kept.tolist()) == sorted(reference_fast_nms(boxes, scores, labels, 0.5, 4))
    assert torch.bincount(labels[kept]).tolist() == [4, 4, 4]


@pytest.mark.parametrize("top_k", [0, -1])
def test_top_k_below_one_is_a_clear_error(top_k):
    boxes, scores, labels = random_detections(2, n=10)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        fast_nms(boxes, scores, labels, 0.5, top_k=top_k)
    with pytest.raises(ValueError, match="top_k"):  # even with nothing to suppress
        fast_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5, top_k)


def test_empty_input():
    kept = fast_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert kept.dtype == torch.long and kept.shape == (0,)


def test_one_class_matches_the_definition():
    boxes, scores, _ = random_detections(3, n=120)
    labels = torch.zeros(120, dtype=torch.long)
    kept = fast_nms(boxes, scores, labels, 0.5, top_k=50)
    assert set(kept.tolist()) == reference_fast_nms(boxes, scores, labels, 0.5, 50)
    assert len(kept) <= 50


def test_ties_lower_index_ranks_higher():
    # Three copies of one box with equal scores: the first copy suppresses the two others.
    # A fourth, disjoint box of the same score comes after it in index order.
    boxes = torch.tensor([[0, 0, 10, 10]] * 3 + [[50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.full((4,), 0.5)
    labels = torch.zeros(4, dtype=torch.long)
    assert fast_nms(boxes, scores, labels).tolist() == [0, 3]
    # IoU exactly at the threshold is kept (the paper keeps where the max <= threshold).
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 20]], dtype=torch.float32)
    assert fast_nms(boxes, torch.tensor([0.9, 0.8]), torch.zeros(2, dtype=torch.long)).tolist() == [
        0,
        1,
    ]


def test_degenerate_boxes_do_not_suppress():
    boxes = torch.tensor([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10]], dtype=torch.float32)
    kept = fast_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3, dtype=torch.long))
    assert kept.tolist() == nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()


@pytest.mark.parametrize("seed", range(4))
def test_cpu_block_loop_equals_the_gpu_batch(seed):
    """The CPU computes the 10 upper-triangle blocks one at a time, other devices in one
    batch: both give the same column maxima (T = 150 + seed, not a multiple of the grid)."""
    boxes, scores, labels = random_detections(seed, n=600)
    by_score = scores.argsort(descending=True, stable=True)
    slots, _ = nms_module._top_k_per_class(by_score, labels, 150 + seed)
    t = slots.shape[1]
    n = -(-t // nms_module.GRID)
    grid = torch.nn.functional.pad(boxes[slots], (0, 0, 0, nms_module.GRID * n - t))
    grid = grid.view(len(slots), nms_module.GRID, n, 4)
    looped = nms_module._column_max_by_block(grid, 0.5)
    batched = nms_module._column_max_batched(grid, 0.5)
    assert torch.equal(looped, batched) and (looped > 0).any() and (looped <= 0).any()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_result_on_cuda():
    boxes, scores, labels = random_detections(11)
    cpu = fast_nms(boxes, scores, labels)
    gpu = fast_nms(boxes.cuda(), scores.cuda(), labels.cuda())
    assert gpu.device.type == "cuda" and gpu.cpu().tolist() == cpu.tolist()
