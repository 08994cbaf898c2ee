"""Datasets on real files: shapes, VOC folders, images/ + masks/, Cityscapes; paired transforms."""

import numpy as np
import pytest
import torch
from PIL import Image

from segcli.data.cityscapes import CityscapesDataset
from segcli.data.images import read_image, read_mask
from segcli.data.loader import ResumableSampler
from segcli.data.semantic import SemanticSamples
from segcli.data.shapes import CLASS_NAMES, ShapesDataset
from segcli.data.sources import class_names_for, open_source
from segcli.data.transforms import eval_transform, semantic_train_transform
from segcli.errors import DataError

from helpers import write_pair


def test_shapes_are_deterministic_and_consistent():
    a, b = ShapesDataset("train", 48, 10), ShapesDataset("train", 48, 10)
    for i in range(10):
        x, y = a.load(i), b.load(i)
        assert (x["image"] == y["image"]).all() and (x["mask"] == y["mask"]).all()
        union = np.zeros_like(x["mask"])
        for inst in x["instances"]:
            assert not union[inst["mask"]].any(), "shapes must not overlap"
            union[inst["mask"]] = inst["label"]
        assert (union == x["mask"]).all(), "class map = union of instance masks"
    assert not (a.load(0)["image"] == ShapesDataset("val", 48, 10).load(0)["image"]).all()
    labels = {inst["label"] for i in range(10) for inst in a.load(i)["instances"]}
    assert labels == {1, 2, 3} and CLASS_NAMES[0] == "background"


def test_voc_folder_reads_palette_masks_and_class_names(voc_dir):
    train, val = open_source(str(voc_dir), "train"), open_source(str(voc_dir), "val")
    assert (len(train), len(val)) == (6, 3)
    assert class_names_for(train, None, 255) == ("_background_", "bright", "brighter")
    sample = train.load(0)
    assert sample["image"].shape == (40, 56, 3) and sample["mask"].dtype == np.uint8
    assert set(np.unique(sample["mask"])) <= {0, 1, 2}


def test_image_mask_folder_pairs_by_stem_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(20):
        write_pair(tmp_path / "images", tmp_path / "masks", f"a{i}", rng, palette=False)
    train, val = open_source(str(tmp_path), "train"), open_source(str(tmp_path), "val")
    stems = {train.name(i) for i in range(len(train))} | {val.name(i) for i in range(len(val))}
    assert len(stems) == 20 and len(train) + len(val) == 20 and len(val) > 0
    assert class_names_for(train, None, 255) == ("class_0", "class_1", "class_2")
    (tmp_path / "images" / "lonely.jpg").write_bytes((tmp_path / "images" / "a0.jpg").read_bytes())
    with pytest.raises(DataError, match="lonely.jpg: no partner"):
        open_source(str(tmp_path), "train")


def test_unknown_layout_and_missing_folder(tmp_path):
    with pytest.raises(DataError, match="not a dataset"):
        open_source(str(tmp_path), "train")
    with pytest.raises(DataError, match="not found"):
        open_source(str(tmp_path / "nope"), "train")


def test_corrupt_image_and_rgb_mask_name_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="bad.jpg: cannot decode image"):
        read_image(bad)
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (4, 4)).save(rgb)
    with pytest.raises(DataError, match="rgb.png: RGB mask"):
        read_mask(rgb)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :5] = 255  # white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "r.jpg", exif=exif, quality=100)
    shown = read_image(tmp_path / "r.jpg")
    assert shown.shape == (20, 10, 3)
    assert shown[:5].mean() > 200 and shown[-5:].mean() < 50  # band now on top


def test_train_transform_keeps_image_and_mask_paired():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :10] = 255
    mask = np.zeros((40, 40), np.uint8)
    mask[:, :10] = 1
    pipeline = semantic_train_transform(32, (0.5, 2.0), True, 255)
    dataset = SemanticSamples(_Single(image, mask), pipeline, 2)
    for seed in range(20):
        img, m = dataset[(0, seed)]
        bright = img.mean(0) > 0  # halfway between normalised black and white
        labelled = m != 255
        mismatched = (bright != (m == 1)) & labelled
        assert mismatched.sum() <= 2 * 32, seed  # at most the interpolated edge column(s)
        assert (m == 1).any() == bright[labelled].any()
        assert set(m.unique().tolist()) <= {0, 1, 255}
    a, b = dataset[(0, 7)], dataset[(0, 7)]
    assert torch.equal(a[0], b[0]), "same seed, same augmentation"


def test_flip_is_not_tied_to_scale():
    """Each step gets its own seed: large scales must flip about half the time too."""
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :4] = 255
    mask = (image[..., 0] > 0).astype(np.uint8)
    pipeline = semantic_train_transform(40, (1.0, 1.0), True, 255)
    dataset = SemanticSamples(_Single(image, mask), pipeline, 2)
    flipped = sum(int(dataset[(0, s)][1][:, -1].eq(1).all()) for s in range(60))
    assert 15 < flipped < 45


def test_labels_out_of_range_and_size_mismatch_are_errors(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    dataset = SemanticSamples(_Single(image, np.full((8, 8), 7, np.uint8)), eval_transform(), 3)
    with pytest.raises(DataError, match="label value 7 >= num_classes 3"):
        dataset[0]
    dataset = SemanticSamples(_Single(image, np.zeros((8, 9), np.uint8)), eval_transform(), 3)
    with pytest.raises(DataError, match="mask is 9x8 but its image is 8x8"):
        dataset[0]


def test_binary_masks_map_255_to_foreground():
    image = np.zeros((4, 4, 3), np.uint8)
    mask = np.array([[0, 255] * 2] * 4, np.uint8)
    dataset = SemanticSamples(
        _Single(image, mask), eval_transform(), 2, ignore_index=255, binary=True
    )
    assert dataset[0][1].unique().tolist() == [0, 1]


def test_sampler_resumes_mid_epoch_with_the_same_seeds():
    dataset = list(range(10))
    full = ResumableSampler(dataset, seed=3)
    full.start_at(2)
    order = list(full)
    resumed = ResumableSampler(dataset, seed=3)
    resumed.start_at(2, skip=4)
    assert list(resumed) == order[4:]
    other = ResumableSampler(dataset, seed=3)
    other.start_at(3)
    assert list(other) != order


def test_cityscapes_label_ids_become_train_ids(tmp_path):
    for kind, suffix, mode in (
        ("leftImg8bit", "leftImg8bit.png", "RGB"),
        ("gtFine", "gtFine_labelIds.png", "L"),
    ):
        folder = tmp_path / kind / "val" / "aachen"
        folder.mkdir(parents=True)
        array = (
            np.array([[7, 26, 0, 24]], np.uint8) if mode == "L" else np.zeros((1, 4, 3), np.uint8)
        )
        Image.fromarray(array, mode).save(folder / f"aachen_000000_000019_{suffix}")
    (tmp_path / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_color.png").touch()
    dataset = CityscapesDataset(tmp_path, "val")
    # road (7) -> 0, car (26) -> 13, unlabeled (0) -> 255, person (24) -> 11
    assert dataset.load(0)["mask"].tolist() == [[0, 13, 255, 11]]
    assert len(dataset.class_names) == 19 and dataset.class_names[0] == "road"


class _Single:
    """A one-sample source around arrays."""

    def __init__(self, image, mask):
        self.sample = {"image": image, "mask": mask, "name": "single"}

    def __len__(self):
        return 1

    def load(self, index):
        return dict(self.sample)
