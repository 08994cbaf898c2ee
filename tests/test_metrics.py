"""SegMetrics against hand-worked confusion matrices (FCN paper section 4 formulas)."""

import math

import numpy as np
import pytest
import torch

from segcli.metrics import SegMetrics


def scores(pred, target, k=3, ignore=255):
    m = SegMetrics(k, ignore)
    m.update(torch.tensor(pred), torch.tensor(target))
    return m, m.compute()


def test_hand_worked_matrix_with_ignore_pixels():
    target = [[0, 0, 1, 1, 255], [2, 2, 2, 0, 1]]
    pred = [[0, 1, 1, 1, 0], [2, 2, 0, 0, 1]]
    m, r = scores(pred, target)
    # rows = ground truth: class 0 -> [2, 1, 0]; class 1 -> [0, 3, 0]; class 2 -> [1, 0, 2]
    assert m.confusion_matrix().tolist() == [[2, 1, 0], [0, 3, 0], [1, 0, 2]]
    assert r["pa"] == pytest.approx(7 / 9)
    assert r["per_class_acc"] == pytest.approx([2 / 3, 1.0, 2 / 3])
    # IoU_i = n_ii / (t_i + sum_j n_ji - n_ii): 2/(3+3-2), 3/(3+4-3), 2/(3+2-2)
    assert r["per_class_iou"] == pytest.approx([0.5, 0.75, 2 / 3])
    assert r["miou"] == pytest.approx((0.5 + 0.75 + 2 / 3) / 3)
    assert r["mpa"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert r["fwiou"] == pytest.approx((3 * 0.5 + 3 * 0.75 + 3 * 2 / 3) / 9)


def test_class_only_predicted_counts_in_iou_but_not_accuracy():
    # class 2 never appears in the target but is predicted once
    target = [0, 0, 1, 1]
    pred = [0, 2, 1, 1]
    _, r = scores(pred, target)
    assert math.isnan(r["per_class_acc"][2])  # t_2 = 0
    assert r["per_class_iou"][2] == 0.0  # union = 1 (the false positive)
    assert r["per_class_iou"][0] == pytest.approx(1 / 2)
    assert r["miou"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert r["mpa"] == pytest.approx((0.5 + 1.0) / 2)


def test_class_absent_everywhere_is_left_out_of_the_means():
    _, r = scores([0, 1, 1], [0, 1, 0], k=4)
    assert math.isnan(r["per_class_iou"][2]) and math.isnan(r["per_class_iou"][3])
    assert r["miou"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert r["fwiou"] == pytest.approx((2 * 0.5 + 1 * 0.5) / 3)


def test_summed_over_dataset_not_mean_of_images():
    m = SegMetrics(2)
    m.update(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 0, 0]))  # image 1
    m.update(torch.tensor([1]), torch.tensor([1]))  # image 2
    r = m.compute()
    assert r["per_class_iou"] == pytest.approx([3 / 4, 1 / 2])


def test_out_of_range_values_are_errors():
    for pred, target in ([[3], [0]], [[0], [5]], [[-1], [0]], [[0], [300]]):
        m = SegMetrics(3)
        m.update(torch.tensor(pred), torch.tensor(target))
        with pytest.raises(ValueError, match="outside"):
            m.compute()


def test_ignore_index_inside_class_range_drops_that_class():
    m = SegMetrics(3, ignore_index=0)
    m.update(torch.tensor([1, 2, 2, 1]), torch.tensor([0, 2, 1, 1]))
    assert m.confusion_matrix().tolist() == [[0, 0, 0], [0, 1, 1], [0, 0, 1]]


def test_matches_numpy_reference_on_random_maps():
    rng = np.random.default_rng(1)
    k = 21
    target = rng.integers(0, k, (4, 33, 47))
    target[:, :3] = 255
    pred = rng.integers(0, k, (4, 33, 47))
    keep = target != 255
    expected = np.bincount(k * target[keep] + pred[keep], minlength=k * k).reshape(k, k)
    m = SegMetrics(k)
    m.update(torch.from_numpy(pred), torch.from_numpy(target.astype(np.uint8)))
    assert (m.confusion_matrix().numpy() == expected).all()


def test_rejects_float_inputs_and_shape_mismatch():
    m = SegMetrics(3)
    with pytest.raises(TypeError):
        m.update(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        m.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))


def test_empty_accumulator_gives_nan_scores():
    r = SegMetrics(2).compute()
    assert math.isnan(r["miou"]) and math.isnan(r["pa"])
