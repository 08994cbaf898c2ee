"""Panoptic quality: hand-computed cases, panopticapi's own loop on random images, and
torchmetrics where its semantics agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from panoptic_cases import CATEGORIES, STUFF, THINGS, random_pair
from panopticapi_reference import new_stat, pq_average, pq_stat_image

from segcli.metrics.panoptic import PanopticQuality, SegmentError

PERSON, CAR, SKY, ROAD = 1, 2, 3, 4


def segments(*pairs, crowd=()):
    """segments_info of (id, category) pairs; ids in `crowd` are crowd regions."""
    return [{"id": i, "category_id": c, "iscrowd": int(i in crowd)} for i, c in pairs]


def score(*images) -> dict:
    """PanopticQuality over (pred ids, pred segments, gt ids, gt segments) tuples."""
    metric = PanopticQuality(CATEGORIES)
    for image in images:
        metric.update(*image)
    return metric.compute()


def columns(*values, rows=4):
    """A [rows, len(values)] map whose column j holds values[j]."""
    return np.tile(np.array(values), (rows, 1))


def stats(result, category):
    row = result["per_class"][category]
    return row["tp"], row["fp"], row["fn"]


def test_exact_match_scores_one_whatever_the_ids():
    gt = columns(1, 1, 3, 3)
    pred = columns(7, 7, 9, 9)
    result = score((pred, segments((7, PERSON), (9, SKY)), gt, segments((1, PERSON), (3, SKY))))
    assert result["pq"] == result["sq"] == result["rq"] == 1.0
    assert (result["n"], result["n_things"], result["n_stuff"]) == (2, 1, 1)
    assert result["pq_things"] == result["pq_stuff"] == 1.0
    assert stats(result, PERSON) == stats(result, SKY) == (1, 0, 0)
    assert math.isnan(result["per_class"][CAR]["pq"])  # in neither: out of the means


def test_split_segment_matches_its_larger_part_only():
    gt = np.ones((4, 4), int)
    pred = np.array([1] * 10 + [2] * 6).reshape(4, 4)
    result = score((pred, segments((1, PERSON), (2, PERSON)), gt, segments((1, PERSON))))
    person = result["per_class"][PERSON]
    assert stats(result, PERSON) == (1, 1, 0)
    assert person["sq"] == pytest.approx(10 / 16)
    assert person["rq"] == pytest.approx(1 / 1.5)
    assert person["pq"] == pytest.approx(10 / 16 / 1.5)


def test_an_even_split_matches_nothing_since_iou_must_exceed_half():
    gt = np.ones((4, 4), int)
    pred = columns(1, 1, 2, 2)
    result = score((pred, segments((1, PERSON), (2, PERSON)), gt, segments((1, PERSON))))
    assert stats(result, PERSON) == (0, 2, 1)
    assert result["pq"] == result["sq"] == result["rq"] == 0.0  # counted, not NaN
    assert result["n"] == 1


def test_merged_segment_matches_the_larger_ground_truth():
    gt = np.array([1] * 10 + [2] * 6).reshape(4, 4)
    pred = np.full((4, 4), 5)
    result = score((pred, segments((5, PERSON)), gt, segments((1, PERSON), (2, PERSON))))
    assert stats(result, PERSON) == (1, 0, 1)
    assert result["per_class"][PERSON]["pq"] == pytest.approx(10 / 16 / 1.5)


def test_void_pixels_leave_the_union():
    gt = np.ones((4, 4), int)
    gt[0] = 0  # VOID
    pred = np.full((4, 4), 5)
    result = score((pred, segments((5, PERSON)), gt, segments((1, PERSON))))
    assert stats(result, PERSON) == (1, 0, 0)
    assert result["sq"] == 1.0  # 12 / (16 + 12 - 12 - 4), not 12 / 16


def test_prediction_mostly_on_void_is_no_false_positive():
    gt = columns(0, 0, 1, 1)
    pred = columns(1, 1, 2, 2)  # the car lies on VOID only
    result = score((pred, segments((1, CAR), (2, SKY)), gt, segments((1, SKY))))
    assert stats(result, CAR) == (0, 0, 0)
    assert result["pq"] == 1.0 and result["n"] == 1


def test_prediction_exactly_half_void_is_a_false_positive():
    gt = columns(0, 0, 1, 1)
    pred = columns(0, 1, 1, 2)  # the car: 4 pixels on VOID, 4 on sky
    result = score((pred, segments((1, CAR), (2, SKY)), gt, segments((1, SKY))))
    assert stats(result, CAR) == (0, 1, 0)
    assert stats(result, SKY) == (0, 1, 1)  # IoU 4 / (4 + 8 - 4) = 0.5: no match


def test_crowd_is_never_matched_nor_missed_and_absorbs_its_own_category():
    gt = columns(1, 1, 2, 2)
    gt_segments = segments((1, PERSON), (2, SKY), crowd=(1,))
    pred = columns(5, 5, 6, 6)
    person = score((pred, segments((5, PERSON), (6, SKY)), gt, gt_segments))
    assert stats(person, PERSON) == (0, 0, 0) and person["pq"] == 1.0
    car = score((pred, segments((5, CAR), (6, SKY)), gt, gt_segments))
    assert stats(car, CAR) == (0, 1, 0)  # another category's crowd absorbs nothing


def test_void_and_crowd_add_up_to_ignore_a_prediction():
    gt = columns(0, 1, 2, 2)  # col 0 VOID, col 1 a person crowd, cols 2-3 sky
    gt_segments = segments((1, PERSON), (2, SKY), crowd=(1,))
    pred = np.array([[5, 5, 5, 6], [5, 5, 5, 6], [6, 5, 5, 6], [6, 6, 6, 6]])
    # person 5: 2 VOID + 3 crowd of 8 pixels > half: ignored
    # sky 6: 8 pixels, 5 on sky, 2 on VOID: IoU 5 / (8 + 8 - 5 - 2) = 5/9
    result = score((pred, segments((5, PERSON), (6, SKY)), gt, gt_segments))
    assert stats(result, PERSON) == (0, 0, 0)
    assert stats(result, SKY) == (1, 0, 0)
    assert result["per_class"][SKY]["sq"] == pytest.approx(5 / 9)
    reference = _reference((pred, segments((5, PERSON), (6, SKY)), gt, gt_segments))
    assert (reference[SKY].tp, reference[PERSON].fp) == (1, 0)
    assert result["per_class"][SKY]["sq"] == pytest.approx(reference[SKY].iou)


def test_every_crowd_region_of_a_category_absorbs_predictions():
    """The deliberate difference from panopticapi, which keeps only the last crowd region of
    each category in an image (COCO has one at most, where both agree)."""
    gt = columns(1, 2, 3, 3)
    gt_segments = segments((1, PERSON), (2, PERSON), (3, SKY), crowd=(1, 2))
    pred = columns(5, 5, 6, 6)
    image = (pred, segments((5, PERSON), (6, SKY)), gt, gt_segments)
    assert stats(score(image), PERSON) == (0, 0, 0)
    stat = new_stat()
    pq_stat_image(stat, gt, gt_segments, pred, segments((5, PERSON), (6, SKY)))
    assert stat[PERSON].fp == 1  # 4 of 8 pixels on the one crowd region it looks at


def test_class_on_one_side_only_scores_zero_and_unseen_classes_are_left_out():
    gt = columns(1, 1, 2, 2)
    pred = columns(5, 5, 6, 6)
    result = score((pred, segments((5, CAR), (6, SKY)), gt, segments((1, PERSON), (2, SKY))))
    assert stats(result, PERSON) == (0, 0, 1) and stats(result, CAR) == (0, 1, 0)
    assert result["per_class"][PERSON]["pq"] == result["per_class"][CAR]["pq"] == 0.0
    assert math.isnan(result["per_class"][ROAD]["pq"])
    assert result["pq"] == pytest.approx(1 / 3) and result["n"] == 3
    assert result["pq_things"] == 0.0 and result["n_things"] == 2
    assert result["pq_stuff"] == 1.0 and result["n_stuff"] == 1


def test_no_stuff_at_all_gives_nan_stuff_scores():
    gt = np.ones((2, 2), int)
    result = score((gt, segments((1, PERSON)), gt, segments((1, PERSON))))
    assert math.isnan(result["pq_stuff"]) and result["n_stuff"] == 0
    assert result["pq_things"] == 1.0


def test_counts_add_up_over_images():
    gt = columns(1, 1, 2, 2)
    image = (gt, segments((1, PERSON), (2, SKY)), gt, segments((1, PERSON), (2, SKY)))
    assert stats(score(image, image, image), PERSON) == (3, 0, 0)


@pytest.mark.parametrize(
    "side, pred_ids, pred_segments, message",
    [
        ("pred", [[1, 9]], segments((1, SKY)), "segment id 9 is in the PNG"),
        ("pred", [[1, 1]], segments((1, SKY), (2, SKY)), "lists segment 2, which has no pixel"),
        ("pred", [[1, 1]], segments((1, 77)), "unknown category_id 77"),
        ("pred", [[0, 1]], segments((0, SKY), (1, SKY)), "segment id 0, which is VOID"),
        ("pred", [[1, 1]], segments((1, SKY), (1, CAR)), "segment id 1 appears twice"),
        ("pred", [[1, 1, 1]], segments((1, SKY)), "shape"),
        ("pred", [[1, -1]], segments((1, SKY)), "segment ids must be in"),
    ],
)
def test_inconsistent_segments_are_named(side, pred_ids, pred_segments, message):
    metric = PanopticQuality(CATEGORIES)
    with pytest.raises(SegmentError, match=message) as caught:
        metric.update(np.array(pred_ids), pred_segments, np.ones((1, 2), int), segments((1, SKY)))
    assert caught.value.side == side


def test_ground_truth_errors_name_the_ground_truth_side():
    metric = PanopticQuality(CATEGORIES)
    with pytest.raises(SegmentError) as caught:
        metric.update(
            np.ones((1, 2), int), segments((1, SKY)), np.array([[1, 4]]), segments((1, SKY))
        )
    assert caught.value.side == "gt"


def _reference(*images):
    """panopticapi's statistics over the images (pred first, as `score`)."""
    stat = new_stat()
    for pred, pred_segments, gt, gt_segments in images:
        pq_stat_image(stat, gt, gt_segments, pred, pred_segments)
    return stat


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_panopticapi_on_random_images(seed):
    rng = np.random.default_rng(seed)
    images = [random_pair(rng) for _ in range(20)]
    result = score(*[(p, ps, g, gs) for g, gs, p, ps in images])
    stat = _reference(*[(p, ps, g, gs) for g, gs, p, ps in images])
    categories = {c["id"]: c for c in CATEGORIES}
    for isthing, suffix in ((None, ""), (True, "_things"), (False, "_stuff")):
        overall, _ = pq_average(stat, categories, isthing)
        assert result["pq" + suffix] == pytest.approx(overall["pq"], abs=1e-12)
        assert result["sq" + suffix] == pytest.approx(overall["sq"], abs=1e-12)
        assert result["rq" + suffix] == pytest.approx(overall["rq"], abs=1e-12)
        assert result["n" + suffix] == overall["n"]
    for category in (1, 2, 3, 4):
        assert stats(result, category) == (stat[category].tp, stat[category].fp, stat[category].fn)
    assert sum(stat[c].fp for c in THINGS) > 0 and sum(stat[c].tp for c in STUFF) > 0


def _torchmetrics_input(ids: np.ndarray, segs: list[dict]) -> torch.Tensor:
    """[H, W, 2] (category, instance) pairs; VOID is category 0, which torchmetrics' metric
    knows neither as a thing nor as stuff."""
    category = {s["id"]: s["category_id"] for s in segs} | {0: 0}
    cats = np.vectorize(category.get)(ids)
    instances = np.where(np.isin(cats, THINGS), ids, 0)
    return torch.from_numpy(np.stack([cats, instances], -1))


@pytest.mark.parametrize("seed", range(3))
def test_agrees_with_torchmetrics_without_crowd_or_predicted_void(seed):
    """torchmetrics has no crowd and treats predicted VOID differently (it leaves it out of the
    ground truth's area and forgives ground truth mostly predicted VOID); elsewhere it computes
    the same."""
    from torchmetrics.detection import PanopticQuality as TorchmetricsPQ

    rng = np.random.default_rng(100 + seed)
    images = [random_pair(rng, crowd=False, pred_void=False) for _ in range(20)]
    theirs = TorchmetricsPQ(things=set(THINGS), stuffs=set(STUFF), return_sq_and_rq=True)
    per_class = TorchmetricsPQ(THINGS, STUFF, return_sq_and_rq=True, return_per_class=True)
    for gt, gt_segments, pred, pred_segments in images:
        pair = (
            _torchmetrics_input(pred, pred_segments)[None],
            _torchmetrics_input(gt, gt_segments)[None],
        )
        theirs.update(*pair), per_class.update(*pair)
    result = score(*[(p, ps, g, gs) for g, gs, p, ps in images])
    assert [result[k] for k in ("pq", "sq", "rq")] == pytest.approx(theirs.compute().tolist())
    for row, category in zip(per_class.compute().tolist(), sorted(THINGS) + sorted(STUFF)):
        mine = result["per_class"][category]
        assert [mine["pq"], mine["sq"], mine["rq"]] == pytest.approx(row)


def test_torchmetrics_differs_on_predicted_void():
    """The documented difference: a ground-truth segment half left unpredicted. panopticapi
    (and segcli) keep those pixels in the union; torchmetrics leaves them out."""
    from torchmetrics.detection import PanopticQuality as TorchmetricsPQ

    gt = np.ones((4, 4), int)
    pred = np.zeros((4, 4), int)
    pred[:, :3] = 5
    mine = score((pred, segments((5, SKY)), gt, segments((1, SKY))))
    theirs = TorchmetricsPQ(THINGS, STUFF, allow_unknown_preds_category=True, return_sq_and_rq=True)
    theirs.update(
        _torchmetrics_input(pred, segments((5, SKY)))[None],
        _torchmetrics_input(gt, segments((1, SKY)))[None],
    )
    assert mine["sq"] == pytest.approx(12 / 16)
    assert theirs.compute()[1].item() == pytest.approx(1.0)
