"""Superpixels: SLIC (Achanta et al., "SLIC Superpixels Compared to State-of-the-Art Superpixel
Methods", TPAMI 2012) through scikit-image, the two standard scores of a superpixel map against
ground truth, and majority-vote refinement of a semantic label map inside each superpixel.

Ground-truth segments are the connected regions of equal label (4-connectivity); pixels with
the ignore label belong to no segment. Boundary pixels of a label map are those with a
4-neighbour of another label (scikit-image's `find_boundaries`, mode "thick").
"""

from __future__ import annotations

import cv2
import numpy as np

from segcli.data import IGNORE_INDEX

# Achanta et al. 2012, comparison section ("Adherence to boundaries"): a ground-truth boundary
# pixel is recalled when a superpixel boundary lies within d = 2 pixels.
BOUNDARY_TOLERANCE = 2
# scikit-image's defaults, the SLIC paper's m = 10 for CIELAB
N_SEGMENTS = 100
COMPACTNESS = 10.0


def slic(image: np.ndarray, n_segments: int = N_SEGMENTS, compactness: float = COMPACTNESS):
    """Superpixel labels [H, W] (int64, 0..S-1, each a connected region) of an RGB uint8
    image [H, W, 3], clustered in CIELAB; S is close to, not exactly, `n_segments`."""
    from skimage.segmentation import slic as skimage_slic

    return skimage_slic(
        image, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1
    ).astype(np.int64)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Boundary pixels [H, W] (bool) of a label map: those with a 4-neighbour of another label."""
    from skimage.segmentation import find_boundaries

    return find_boundaries(labels, connectivity=1, mode="thick")


def gt_segments(gt: np.ndarray, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """Connected regions [H, W] (int64, 1..G) of equal label in a class map; 0 where ignored."""
    from skimage.measure import label as connected

    regions = connected(gt.astype(np.int64) + 1, background=0, connectivity=1).astype(np.int64)
    if ignore_index is not None:
        regions[gt == ignore_index] = 0
    return regions


def boundary_recall(
    superpixels: np.ndarray,
    gt: np.ndarray,
    tolerance: int = BOUNDARY_TOLERANCE,
    ignore_index: int | None = IGNORE_INDEX,
) -> float:
    """Share of ground-truth boundary pixels (on labelled pixels) with a superpixel boundary
    pixel within `tolerance` pixels (Chebyshev distance); NaN when the ground truth has none."""
    segments = gt_segments(gt, ignore_index)
    truth = boundaries(segments) & (segments > 0)
    if not truth.any():
        return float("nan")
    window = np.ones((2 * tolerance + 1,) * 2, np.uint8)
    near = cv2.dilate(boundaries(superpixels).view(np.uint8), window).astype(bool)
    return float((truth & near).sum() / truth.sum())


def undersegmentation_error(
    superpixels: np.ndarray, gt: np.ndarray, ignore_index: int | None = IGNORE_INDEX
) -> float:
    """Neubert & Protzel's undersegmentation error ("Superpixel Benchmark and Comparison",
    Forum Bildverarbeitung 2012; as in Stutz et al., CVIU 2018):
        UE = (1/N) sum_G sum_{S overlapping G} min(|S & G|, |S - G|)
    over the N labelled pixels: each superpixel leaking out of a segment costs the smaller of
    its parts inside and outside. 0 for a perfect fit; NaN when nothing is labelled."""
    segments = gt_segments(gt, ignore_index)
    keep = segments > 0
    if not keep.any():
        return float("nan")
    s, g = superpixels[keep], segments[keep] - 1
    span = int(g.max()) + 1
    overlap = np.bincount(s * span + g, minlength=(int(s.max()) + 1) * span).reshape(-1, span)
    outside = overlap.sum(1, keepdims=True) - overlap
    return float(np.minimum(overlap, outside).sum() / keep.sum())


def vote_counts(labels: np.ndarray, superpixels: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels of each class in each superpixel [S, K] for class ids [H, W] in [0, K) and
    superpixels [H, W] in [0, S)."""
    span = int(superpixels.max()) + 1
    flat = superpixels.ravel().astype(np.int64) * num_classes + labels.ravel()
    return np.bincount(flat, minlength=span * num_classes).reshape(span, num_classes)


def majority_vote(labels: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
    """`labels` [H, W] with every superpixel set to its most frequent class (ties: the lower
    class id)."""
    counts = vote_counts(labels, superpixels, int(labels.max()) + 1)
    return counts.argmax(1).astype(labels.dtype)[superpixels]


def boundary_overlay(image: np.ndarray, superpixels: np.ndarray, colour=(255, 255, 0)):
    """The RGB image [H, W, 3] with superpixel boundaries drawn in `colour` (yellow)."""
    out = image.copy()
    out[boundaries(superpixels)] = colour
    return out
