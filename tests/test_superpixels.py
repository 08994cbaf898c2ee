"""SLIC superpixels: the scores on hand-checkable maps, majority-vote refinement (also as a
prediction function), and `segcli superpixels` through the real CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from segcli.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from segcli.ops.superpixel_refine import superpixel_predictor
from segcli.ops.superpixels import (
    boundary_recall,
    majority_vote,
    slic,
    undersegmentation_error,
)

from helpers import run_segcli, write_pair


def halves(size=8, cut=4, right=1):
    """A [size, size] map: 0 left of column `cut`, `right` from it on."""
    label = np.zeros((size, size), np.int64)
    label[:, cut:] = right
    return label


@pytest.mark.parametrize("tolerance, recall", [(2, 1.0), (1, 0.5), (0, 0.0)])
def test_boundary_recall_counts_ground_truth_edges_within_the_tolerance(tolerance, recall):
    # ground-truth boundary pixels: columns 3 and 4; superpixel boundary: columns 5 and 6
    assert boundary_recall(halves(cut=6), halves(cut=4), tolerance) == recall


def test_boundary_recall_leaves_out_ignored_pixels_and_is_nan_without_edges():
    gt = halves(cut=4, right=255)  # one edge: column 3, beside the ignored right half
    assert boundary_recall(halves(cut=2), gt, tolerance=0) == 0.0
    assert boundary_recall(halves(cut=4), gt, tolerance=0) == 1.0
    assert math.isnan(boundary_recall(halves(), np.zeros((8, 8), np.int64)))


@pytest.mark.parametrize(
    "superpixels, error",
    [
        (halves(4, cut=2), 0.0),  # the ground truth itself
        (np.zeros((4, 4), np.int64), 1.0),  # one superpixel: min(8, 8) twice over 16 pixels
        (halves(4, cut=3), 0.5),  # columns 0-2 and 3: min(8, 4) + min(4, 8) + min(4, 0)
    ],
)
def test_undersegmentation_error_by_hand(superpixels, error):
    assert undersegmentation_error(superpixels, halves(4, cut=2)) == error


def test_undersegmentation_error_separates_disconnected_regions_of_a_class():
    gt = np.zeros((8, 8), np.int64)
    gt[0:2, 0:2] = gt[5:7, 5:7] = 1
    superpixels = (gt == 1).astype(np.int64)  # one superpixel over both squares
    assert undersegmentation_error(superpixels, gt) == 2 * 4 / 64


def test_undersegmentation_error_leaves_out_ignored_pixels():
    assert undersegmentation_error(np.zeros((4, 4), np.int64), halves(4, 2, right=255)) == 0.0


def test_majority_vote_takes_the_most_frequent_class_and_the_lower_on_ties():
    labels = np.array([[0, 2, 2, 1], [1, 1, 3, 3]])
    superpixels = np.array([[0, 0, 0, 0], [1, 1, 1, 1]])
    assert majority_vote(labels, superpixels).tolist() == [[2, 2, 2, 2], [1, 1, 1, 1]]


def two_colour_image(size=32):
    image = np.zeros((size, size, 3), np.uint8)
    image[:, : size // 2] = (200, 30, 30)
    image[:, size // 2 :] = (30, 30, 200)
    return image


def test_slic_follows_a_colour_edge():
    image = two_colour_image()
    labels = slic(image, n_segments=4, compactness=10)
    assert labels.min() == 0 and 2 <= labels.max() + 1 <= 8
    gt = halves(32, 16)
    assert boundary_recall(labels, gt) == 1.0
    assert undersegmentation_error(labels, gt) == 0.0


def test_superpixel_predictor_returns_the_majority_vote_as_logits():
    image = two_colour_image()
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    normalised = torch.from_numpy(((image / 255 - mean) / std).transpose(2, 0, 1)).float()[None]
    noisy = halves(32, 16, right=2)
    noisy[3:6, 3:6] = 1  # a speck of the wrong class inside each half
    noisy[20:23, 25:28] = 0
    logits = torch.nn.functional.one_hot(torch.from_numpy(noisy), 3).permute(2, 0, 1)[None]

    predict = superpixel_predictor(n_segments=4, compactness=10, predict=lambda m, x: logits)
    refined = predict(None, normalised)
    assert refined.shape == (1, 3, 32, 32)
    assert refined.argmax(1)[0].tolist() == halves(32, 16, right=2).tolist()


# --- the command --------------------------------------------------------------------------


@pytest.fixture
def pairs(in_tmp):
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        write_pair(in_tmp / "images", in_tmp / "masks", stem, rng)
    return in_tmp


def test_superpixels_command_writes_maps_overlays_and_scores(cli, pairs):
    result = cli(
        "superpixels",
        "images",
        "--n-segments",
        "20",
        "--gt",
        "masks",
        "--out",
        "sp",
        "--json",
        "sp.json",
    )
    assert result.exit_code == 0, result.output
    assert "boundary recall" in result.output and "mean" in result.output
    for stem in ("a", "b"):
        with Image.open(pairs / "sp" / f"{stem}.png") as im:
            assert im.mode.startswith("I") and im.size == (56, 40)
            labels = np.asarray(im)
        assert Image.open(pairs / "sp" / f"{stem}_overlay.jpg").size == (56, 40)
        assert 2 <= labels.max() + 1 <= 60
    doc = json.loads((pairs / "sp.json").read_text())
    assert doc["n_segments"] == 20 and doc["tolerance"] == 2
    rows = {row["image"].split("/")[-1]: row for row in doc["images"]}
    assert set(rows) == {"a.jpg", "b.jpg"}
    assert rows["a.jpg"]["superpixels"] == np.asarray(Image.open(pairs / "sp" / "a.png")).max() + 1
    assert 0 < rows["a.jpg"]["boundary_recall"] <= 1
    assert 0 <= rows["a.jpg"]["undersegmentation_error"] < 1
    mean = np.mean([r["boundary_recall"] for r in rows.values()])
    assert doc["mean"]["boundary_recall"] == pytest.approx(mean)


def test_superpixels_without_ground_truth_reports_counts_only(pairs):
    result = run_segcli(
        "superpixels", "images/a.jpg", "--out", "sp", "--json", "sp.json", cwd=pairs
    )
    assert result.returncode == 0, result.stderr
    assert "boundary recall" not in result.stdout
    doc = json.loads((pairs / "sp.json").read_text())
    assert "boundary_recall" not in doc["images"][0] and (pairs / "sp" / "a_overlay.jpg").exists()


def user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_bad_input_is_one_line_and_writes_nothing(cli, pairs):
    user_error(
        cli("superpixels", "images", "--gt", "masks", "--out", "masks"),
        "a.png: --out masks would overwrite this input",
    )
    (pairs / "masks" / "b.png").unlink()
    user_error(cli("superpixels", "images", "--gt", "masks", "--out", "sp"), "b.jpg: no mask")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(pairs / "masks" / "b.png")
    user_error(
        cli("superpixels", "images", "--gt", "masks", "--out", "sp"),
        "b.png: mask is 10x10 but b.jpg is 56x40",
    )
    user_error(cli("superpixels", "nowhere.jpg", "--out", "sp"), "nowhere.jpg: no such file")
    user_error(cli("superpixels", "images", "--n-segments", "0", "--out", "sp"), "--n-segments")
    user_error(cli("superpixels", "images", "--gt", "none", "--out", "sp"), "none: mask folder")
    (pairs / "clip.mp4").write_bytes(b"")
    user_error(cli("superpixels", "clip.mp4", "--out", "sp"), "takes images, not videos")
    assert not (pairs / "sp").exists()
