"""U-Net's section 3.1: the elastic deformation's field (3x3 grid, Gaussian 10 px, bicubic),
images and masks warped alike, and drop-out at the end of the contracting path."""

import numpy as np
import torch

from segcli.data.elastic import CoarseGridElastic, coarse_to_dense
from segcli.data.transforms import seed_transform, semantic_train_transform
from segcli.recipe import get_recipe

SIDE = 65  # grid nodes at pixels 0, 32 and 64


def displacement_fields(draws: int, seed: int = 0) -> np.ndarray:
    """[draws, SIDE, SIDE, 2] displacements (dx, dy) the transform samples from."""
    elastic = CoarseGridElastic()
    elastic.set_random_seed(seed)
    xs, ys = np.meshgrid(np.arange(SIDE), np.arange(SIDE))
    fields = []
    for _ in range(draws):
        params = elastic.get_params_dependent_on_data({"shape": (SIDE, SIDE, 3)}, {})
        fields.append(np.stack([params["map_x"] - xs, params["map_y"] - ys], axis=-1))
    return np.stack(fields)


def test_displacements_are_gaussian_10px_on_the_3x3_grid_and_smooth_between():
    fields = displacement_fields(500)
    for y, x in [(0, 0), (0, 32), (32, 32), (64, 64), (32, 0)]:  # corners, edges, centre
        std = fields[:, y, x].std(axis=0)
        assert np.all(np.abs(std - 10) < 1.0), (y, x, std)
        assert np.all(np.abs(fields[:, y, x].mean(axis=0)) < 1.5)
    between = fields[:, 16, 16].std(axis=0)  # bicubic blends four nodes: less spread
    assert np.all((between > 4) & (between < 8)), between
    # smooth: neighbouring displacements differ by a fraction of a pixel, and no staircase
    steps = np.diff(fields, axis=2)
    assert np.abs(steps).mean() < 0.5 and np.abs(np.diff(steps, axis=2)).max() < 0.5


def test_dense_field_passes_through_the_nodes_at_the_corners():
    coarse = np.random.default_rng(1).normal(0, 10, (3, 3, 2))
    dense = coarse_to_dense(coarse, 41, 57)
    assert dense.shape == (41, 57, 2) and dense.dtype == np.float32
    np.testing.assert_allclose(dense[::20, ::28], coarse, atol=1e-4)


def test_image_and_mask_are_warped_alike():
    labels = np.zeros((64, 64), np.uint8)
    labels[10:40, 12:30] = 1
    labels[36:60, 34:58] = 2
    image = np.repeat((labels * 100)[..., None], 3, axis=2).astype(np.uint8)
    pipeline = semantic_train_transform(64, (1.0, 1.0), False, 255, elastic=True)
    moved = 0
    for seed in range(5):
        seed_transform(pipeline, seed)
        out = pipeline(image=image, mask=labels)
        mask = out["mask"].numpy()
        std = np.array([0.229, 0.224, 0.225])[0] * 255
        gray = out["image"][0].numpy() * std + 0.485 * 255  # undo the normalisation
        from_image = np.clip(np.round(gray / 100), 0, 2)
        assert (from_image == mask).mean() > 0.97  # only blended edge pixels differ
        moved += (mask != labels).sum()
    assert moved > 100  # the deformation did move the objects


def test_dropout_at_the_end_of_the_contracting_path():
    model = get_recipe("unet").build_model(2, base=4).train()
    channels = []
    model.dropout.register_forward_hook(lambda _, args, out: channels.append(args[0].shape[1]))
    model(torch.rand(1, 3, 32, 32))
    assert channels == [32, 64]  # levels 3 and 4: 8x and 16x the base width
