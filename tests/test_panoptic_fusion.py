"""Panoptic FPN fusion rules, the class mapping between two models, and the shapes data's
panoptic ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.data.coco import ShapesInstances
from segcli.data.panoptic import read_panoptic_json, read_segment_png
from segcli.data.shapes_panoptic import panoptic_target, shapes_classes, write_shapes_panoptic
from segcli.metrics.panoptic import PanopticQuality
from segcli.ops.panoptic import fuse_panoptic, match_classes

# semantic model: 0 road (stuff), 1 sky (stuff), 2 person (thing); instance model: 1 person
CLASSES = match_classes(["road", "sky", "person"], ["background", "person"], [7])


def box_mask(y0, y1, x0, x1, shape=(8, 8)):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def fuse(semantic=None, scores=(), masks=(), labels=None, **options):
    semantic = np.zeros((8, 8), np.int64) if semantic is None else semantic
    masks = np.array(masks, bool).reshape(-1, *semantic.shape)
    labels = np.ones(len(scores), np.int64) if labels is None else np.array(labels)
    return fuse_panoptic(semantic, np.array(scores, float), labels, masks, CLASSES, **options)


def test_match_classes_pairs_equal_names_and_numbers_stuff_after_things():
    assert CLASSES.things == {1: 7}
    assert CLASSES.stuff == {0: 8, 1: 9}
    assert [c["name"] for c in CLASSES.categories] == ["person", "road", "sky"]
    assert [c["isthing"] for c in CLASSES.categories] == [1, 0, 0]


def test_match_classes_takes_an_explicit_pairing():
    classes = match_classes(["bg", "people"], ["background", "person"], things={"people": "person"})
    assert classes.things == {1: 1} and classes.stuff == {0: 2}
    with pytest.raises(ValueError, match="'persons' is not a class"):
        match_classes(["bg", "people"], ["background", "person"], things={"people": "persons"})


def test_instances_take_pixels_in_score_order_whatever_the_input_order():
    low, high = box_mask(0, 4, 0, 4), box_mask(2, 6, 2, 6)
    ids, segments = fuse(scores=[0.6, 0.9], masks=[low, high], overlap_threshold=0.9)
    assert [s["instance"] for s in segments[:2]] == [1, 0]  # the 0.9 one first
    assert (ids[high] == 1).all()
    assert segments[1]["area"] == 16 - 4  # the 0.6 one keeps only its free pixels
    assert (ids[low & ~high] == 2).all()


def test_equal_scores_keep_the_input_order():
    ids, segments = fuse(scores=[0.7, 0.7], masks=[box_mask(0, 4, 0, 4), box_mask(0, 4, 4, 8)])
    assert [s["instance"] for s in segments[:2]] == [0, 1]


def test_an_instance_mostly_covered_already_is_dropped():
    first, second = box_mask(0, 4, 0, 4), box_mask(0, 4, 1, 5)  # 12 of 16 pixels taken
    _, segments = fuse(scores=[0.9, 0.8], masks=[first, second], overlap_threshold=0.5)
    assert [s["instance"] for s in segments if s["isthing"]] == [0]
    _, kept = fuse(scores=[0.9, 0.8], masks=[first, second], overlap_threshold=0.75)
    assert [s["instance"] for s in kept if s["isthing"]] == [0, 1]  # 0.75 is not above 0.75


def test_scores_below_the_threshold_are_dropped_and_equal_ones_kept():
    masks = [box_mask(0, 2, 0, 2), box_mask(4, 6, 4, 6)]
    _, segments = fuse(scores=[0.5, 0.49], masks=masks, score_threshold=0.5)
    assert [s["score"] for s in segments if s["isthing"]] == [0.5]


def test_mask_probabilities_are_binarised_at_a_half():
    probs = np.zeros((1, 1, 8, 8), np.float32)  # an instance model's [N, 1, H, W]
    probs[0, 0, :2, :3] = 0.5
    probs[0, 0, 2:4, :3] = 0.49
    ids, segments = fuse_panoptic(
        np.zeros((8, 8), np.int64), np.array([0.9]), np.array([1]), probs, CLASSES, stuff_area=1000
    )
    assert segments[0]["area"] == 6 and (ids[:2, :3] == 1).all()


def test_empty_masks_and_labels_outside_things_are_skipped():
    masks = [np.zeros((8, 8), bool), box_mask(0, 2, 0, 2)]
    _, segments = fuse(scores=[0.9, 0.8], masks=masks, labels=[1, 5])
    assert not any(s["isthing"] for s in segments)


def test_stuff_fills_free_pixels_and_small_regions_are_removed():
    semantic = np.zeros((8, 8), np.int64)
    semantic[:3] = 1  # sky: 24 pixels, 6 of them under the person (and 2 of road)
    semantic[7] = 2  # person in the semantic map, but no instance there: stays VOID
    person = box_mask(0, 4, 0, 2)
    ids, segments = fuse(semantic, scores=[0.9], masks=[person], stuff_area=16)
    assert [(s["category_id"], s["area"]) for s in segments] == [(7, 8), (8, 30), (9, 18)]
    assert (ids[7] == 0).all()
    ids, segments = fuse(semantic, scores=[0.9], masks=[person], stuff_area=19)
    assert [s["category_id"] for s in segments] == [7, 8]  # sky's 18 free pixels < 19
    assert (ids[:3][~person[:3]] == 0).all()


def test_segment_ids_count_up_from_one_and_cover_every_segment():
    semantic = np.zeros((8, 8), np.int64)
    semantic[4:] = 1
    ids, segments = fuse(semantic, scores=[0.9], masks=[box_mask(0, 2, 0, 2)], stuff_area=1)
    assert [s["id"] for s in segments] == [1, 2, 3]
    assert set(np.unique(ids).tolist()) == {1, 2, 3}


def test_fusing_the_shapes_ground_truth_gives_the_panoptic_ground_truth():
    """Perfect semantic and instance predictions fuse into segments of the same categories as
    the shapes panoptic ground truth, so PQ is 1."""
    source, classes = ShapesInstances("val", size=48, count=3), shapes_classes()
    metric = PanopticQuality(classes.categories)
    for index in range(len(source)):
        sample = source.load(index)
        n = len(sample["instances"])
        ids, segments = fuse_panoptic(
            sample["mask"].astype(np.int64),
            np.linspace(1.0, 0.9, n),
            np.array([i["label"] for i in sample["instances"]]),
            np.array([i["mask"] for i in sample["instances"]]).reshape(n, 48, 48),
            classes,
            stuff_area=64,
        )
        metric.update(ids, segments, *panoptic_target(sample, classes))
    result = metric.compute()
    assert result["pq"] == 1.0 and result["n_stuff"] == 1 and result["n_things"] >= 2


def test_shapes_panoptic_ground_truth_is_written_in_coco_layout(tmp_path):
    path = tmp_path / "panoptic_shapes_val.json"
    write_shapes_panoptic(path, size=32, count=3)
    doc = read_panoptic_json(path)
    assert doc.folder == tmp_path / "panoptic_shapes_val"
    assert [c["name"] for c in doc.categories] == ["square", "circle", "triangle", "background"]
    source = ShapesInstances("val", size=32, count=3)
    for index in range(3):
        sample, ann = source.load(index), doc.annotations[index + 1]
        ids = read_segment_png(doc.folder / ann["file_name"])
        areas = {s["id"]: s["area"] for s in ann["segments_info"]}
        assert areas == dict(zip(*np.unique(ids, return_counts=True)))
        background = [s for s in ann["segments_info"] if s["category_id"] == 4]
        assert background[0]["area"] == (sample["mask"] == 0).sum()
        assert len(ann["segments_info"]) == len(sample["instances"]) + 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
