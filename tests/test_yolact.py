"""YOLACT (recipes/nets/yolact.py) on synthetic targets, and its anchor / box / mask helpers."""

import json
import math

import cv2
import pytest
import torch
from PIL import Image
from torchvision.models.detection._utils import Matcher

from segcli.config import resolve_config
from segcli.data.shapes import ShapesDataset
from segcli.engine import checkpoint
from segcli.errors import ConfigError
from segcli.ops.boxes import SSD_BOX_CODER, crop_masks, grid_anchors
from segcli.recipe import get_recipe
from segcli.recipes.nets import yolact

from helpers import TINY_SHAPES, TINY_YOLACT, TINY_YOLACT_FLAGS

LOSSES = {"loss_cls", "loss_box", "loss_mask", "loss_semantic"}


def target(h: int, w: int, boxes: list[list[int]], labels: list[int]) -> dict:
    """Rectangles as masks, with their boxes (xyxy px) and labels."""
    masks = torch.zeros(len(boxes), h, w, dtype=torch.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes):
        mask[y1:y2, x1:x2] = 1
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
        "masks": masks,
    }


def tiny_model(num_classes: int = 4, **options) -> yolact.Yolact:
    torch.manual_seed(0)
    return get_recipe("yolact").build_model(num_classes, **{**TINY_YOLACT, **options})


def test_train_mode_returns_the_four_named_finite_losses_reaching_every_parameter():
    model = tiny_model().train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 80)]
    # One object per pyramid level (anchor sides 3, 6, 11, 22, 45 px); none in the second image.
    boxes = [[1, 1, 4, 4], [10, 2, 16, 8], [20, 2, 31, 13], [2, 20, 24, 42], [15, 15, 60, 60]]
    targets = [target(64, 64, boxes, [1, 2, 3, 1, 2]), target(48, 80, [], [])]
    losses = model(images, targets)
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values()), losses
    sum(losses.values()).backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert silent == []


def test_eval_output_follows_the_torchvision_detection_convention():
    model = tiny_model().eval()
    with torch.no_grad():
        outputs = model([torch.rand(3, 67, 45), torch.rand(3, 30, 90)])
    assert len(outputs) == 2
    for out, (h, w) in zip(outputs, [(67, 45), (30, 90)]):
        n = len(out["scores"])
        assert 0 < n <= yolact.MAX_DETECTIONS  # 4 classes at init: many scores above 0.05
        assert out["boxes"].shape == (n, 4) and out["masks"].shape == (n, 1, h, w)
        assert out["labels"].dtype == torch.long and out["labels"].min() >= 1
        assert out["labels"].max() <= 3
        assert (out["scores"].diff() <= 0).all() and (out["scores"] > yolact.SCORE_THRESH).all()
        assert out["masks"].min() >= 0 and out["masks"].max() <= 1
        boxes = out["boxes"]
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        # Masks are cropped by their predicted box: nothing outside it.
        assert torch.equal(crop_masks(out["masks"][:, 0], boxes), out["masks"][:, 0])


def test_prototypes_are_138_pixels_at_550():
    model = tiny_model(size=550).eval()
    seen = {}
    model.protonet.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    with torch.no_grad():
        model([torch.rand(3, 100, 120)])
    assert seen["shape"] == (1, 8, 138, 138)
    model = tiny_model(size=550, anchor_scales=yolact.SCALES)
    anchors = model._anchors([(69, 69), (35, 35), (18, 18), (9, 9), (5, 5)], "cpu")
    assert len(anchors) == 19248
    side = (anchors[:, 2:] - anchors[:, :2]) * 550  # ratio-1 anchors are the scales, squared
    assert side[0].tolist() == pytest.approx([24, 24]) and side[-3].tolist() == pytest.approx(
        [384, 384]
    )


@pytest.mark.parametrize("nms, expected", [("fast", "fast_nms"), ("standard", "batched_nms")])
def test_nms_option_picks_fast_or_standard_nms(monkeypatch, nms, expected):
    calls = []
    for name in ("fast_nms", "batched_nms"):
        original = getattr(yolact, name)
        monkeypatch.setattr(
            yolact, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k)
        )
    model = tiny_model(nms=nms).eval()
    with torch.no_grad():
        model([torch.rand(3, 64, 64)])
    assert calls == [expected]
    with pytest.raises(ConfigError, match="nms"):
        tiny_model(nms="soft")


def test_fast_nms_output_matches_the_operator_on_the_candidates():
    """What the model keeps is exactly fast_nms over the (anchor, class) candidates."""
    model = tiny_model().eval()
    image = torch.rand(3, 64, 64)
    with torch.no_grad():
        out = model([image])[0]
        x = model.transform([image])
        features = list(model.backbone(x).values())
        cls, box, _ = model.head(features)
    anchors = model._anchors([f.shape[-2:] for f in features], "cpu")
    scores = cls[0].softmax(-1)[:, 1:]
    anchor, label = torch.nonzero(scores > yolact.SCORE_THRESH, as_tuple=True)
    boxes = SSD_BOX_CODER.decode_single(box[0][anchor], anchors[anchor]).clamp(0, 1)
    keep = yolact.fast_nms(boxes, scores[anchor, label], label, 0.5, 200)[:100]
    assert torch.allclose(out["boxes"], boxes[keep] * 64)
    assert torch.equal(out["labels"], label[keep] + 1)


def test_grid_anchors_centres_sizes_and_order():
    anchors = grid_anchors([(2, 3), (1, 1)], [0.2, 0.8], (1.0, 0.5, 2.0))
    assert anchors.shape == (2 * 3 * 3 + 3, 4)
    # Level 0, row 0, column 1, ratio 1: centre ((1 + 0.5) / 3, 0.5 / 2), side 0.2.
    torch.testing.assert_close(anchors[3], torch.tensor([0.5 - 0.1, 0.25 - 0.1, 0.5 + 0.1, 0.35]))
    w, h = anchors[4, 2] - anchors[4, 0], anchors[4, 3] - anchors[4, 1]  # ratio 1/2: tall
    torch.testing.assert_close((w / h).item(), 0.5)
    torch.testing.assert_close((w * h).item(), 0.04)
    torch.testing.assert_close(anchors[-3], torch.tensor([0.1, 0.1, 0.9, 0.9]))


def test_ssd_box_coding_round_trips_with_the_ssd_variances():
    anchors = torch.tensor([[0.1, 0.1, 0.3, 0.5]])
    gt = torch.tensor([[0.12, 0.05, 0.36, 0.45]])
    codes = SSD_BOX_CODER.encode_single(gt, anchors)
    # t_x = (g_cx - a_cx) / (0.1 a_w) = (0.24 - 0.2) / 0.02 = 2; t_w = log(0.24 / 0.2) / 0.2
    assert codes[0, 0].item() == pytest.approx(2.0, abs=1e-5)
    assert codes[0, 2].item() == pytest.approx(math.log(1.2) / 0.2, abs=1e-5)
    torch.testing.assert_close(SSD_BOX_CODER.decode_single(codes, anchors), gt)


def test_crop_masks_keeps_pixels_whose_centre_is_inside():
    masks = torch.ones(1, 4, 5)
    cropped = crop_masks(masks, torch.tensor([[1.0, 0.4, 3.6, 2.0]]))
    expected = torch.zeros(4, 5)
    expected[0:2, 1:4] = 1  # centres x 1.5, 2.5, 3.5 and y 0.5, 1.5
    assert torch.equal(cropped[0], expected)


def test_matching_thresholds():
    anchors = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 7.0], [0, 0, 10, 4.5], [50, 50, 60, 60.0]])
    boxes = torch.tensor([[0, 0, 10, 10.0]])  # IoU with the anchors: 1, 0.7, 0.45, 0
    index, cls = yolact.match_anchors(anchors, boxes, torch.tensor([2]), Matcher(0.5, 0.4, True))
    assert cls.tolist() == [2, 2, -1, 0] and index[:2].tolist() == [0, 0]


def test_ohem_takes_three_negatives_per_positive_with_the_highest_loss():
    logits = torch.zeros(1, 6, 3)
    logits[0, :, 0] = torch.tensor([0.0, 5.0, -1.0, -2.0, -3.0, 4.0])  # background logits
    target = torch.tensor([[1, 0, 0, 0, 0, -1]])  # anchor 5 ignored
    loss = yolact.ohem_cross_entropy(logits, target, ratio=3)
    chosen = [0, 4, 3, 2]  # the positive, then the three hardest negatives (lowest bg logit)
    expected = torch.nn.functional.cross_entropy(
        logits[0, chosen], target[0, chosen], reduction="sum"
    )
    torch.testing.assert_close(loss, expected)


def test_mask_loss_counts_only_inside_the_gt_box_and_divides_by_its_area():
    # Logits near 0 that vary per pixel and a target that is 1 on half of the box, so every
    # pixel's BCE differs; the box [2, 2, 6.5, 4.5] px holds 2 x 4 pixel centres but has area
    # 4.5 x 2.5 = 11.25, so sum / area differs from the mean inside (/ 8), the sum, and the mean
    # or sum over the whole mask.
    prototypes = torch.linspace(-0.6, 0.6, 64).view(1, 8, 8)
    gt_masks = torch.zeros(1, 8, 8)
    gt_masks[0, 2:4, 2:4] = 1
    gt_boxes = torch.tensor([[2 / 8, 2 / 8, 6.5 / 8, 4.5 / 8]])
    positive, coef, matched = torch.tensor([True]), torch.tensor([[1.0]]), torch.tensor([0])
    loss = yolact.mask_loss(coef, prototypes, gt_masks, gt_boxes, matched, positive)
    x, y = prototypes[0], gt_masks[0]
    bce = torch.nn.functional.softplus(x) - x * y  # BCE with logits, per pixel
    inside = bce[2:4, 2:6]
    expected = inside.sum() / 11.25
    torch.testing.assert_close(loss, expected)
    for other in (inside.mean(), inside.sum(), bce.mean(), bce.sum(), bce.sum() / 11.25):
        assert abs(other - expected) > 0.05  # each other normalisation would fail the check
    prototypes[0, 6:, :] = 5.0  # outside the box: must not change the loss
    prototypes[0, :, 6:] = -5.0
    again = yolact.mask_loss(coef, prototypes, gt_masks, gt_boxes, matched, positive)
    torch.testing.assert_close(again, loss)


def silenced(model: yolact.Yolact) -> yolact.Yolact:
    """No class scores above 0.05: a zero class head with a large background bias."""
    with torch.no_grad():
        model.head.cls.weight.zero_()
        model.head.cls.bias.zero_()
        model.head.cls.bias.view(model.head.anchors, -1)[:, 0] = 10.0
    return model


def test_no_detection_gives_empty_outputs():
    model = silenced(tiny_model()).eval()
    with torch.no_grad():
        outputs = model([torch.rand(3, 67, 45), torch.rand(3, 30, 90)])
    for out, (h, w) in zip(outputs, [(67, 45), (30, 90)]):
        assert out["boxes"].shape == (0, 4) and out["scores"].shape == (0,)
        assert out["labels"].shape == (0,) and out["labels"].dtype == torch.long
        assert out["masks"].shape == (0, 1, h, w)


def test_infer_with_no_detection(cli, in_tmp):
    recipe = get_recipe("yolact")
    sets = [f"{k}={v!r}".replace(" ", "") for k, v in TINY_YOLACT.items()]
    cfg = resolve_config(recipe, {}, sets)
    names = ["background", "square", "circle", "triangle"]
    torch.manual_seed(0)
    model = silenced(recipe.build_model(len(names), **cfg.model))
    checkpoint.save("silent.pt", {"model": model.state_dict(), "recipe": recipe.name,
                                  "task": recipe.task, "config": cfg.to_dict(),
                                  "class_names": names})  # fmt: skip
    Image.fromarray(ShapesDataset("val", size=48, count=1).load(0)["image"]).save("one.png")
    result = cli("infer", "silent.pt", "one.png", "--out", "pred", "--score-threshold", "0")
    assert result.exit_code == 0, result.output
    assert (in_tmp / "pred" / "one_overlay.jpg").is_file()
    assert json.loads((in_tmp / "pred" / "results.json").read_text()) == []


def test_recipes_keep_the_paper_settings():
    full, r50 = get_recipe("yolact"), get_recipe("yolact-r50")
    assert full.task == r50.task == "instance"
    assert full.options["backbone"] == "resnet101" and r50.options["backbone"] == "resnet50"
    assert full.defaults["lr"] == 1e-3 and full.defaults["img_size"] == 550
    assert full.defaults["lr_steps"] == (280_000, 600_000, 700_000, 750_000)
    assert 45e6 < full.count_parameters() < 55e6  # ResNet-101-FPN YOLACT, 81 classes


def test_pretrained_backbone_only_from_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="not in the local torch cache"):
        get_recipe("yolact").build_model(4, pretrained=True, **TINY_YOLACT)


@pytest.mark.slow
def test_train_eval_and_video_infer_through_the_cli(cli, in_tmp):
    """`segcli train yolact` on tiny shapes, `eval --metric mask-ap`, `infer` on a video."""
    result = cli("train", "yolact", "--iters", "2", *TINY_SHAPES, *TINY_YOLACT_FLAGS)
    assert result.exit_code == 0, result.output
    result = cli("eval", "--metric", "mask-ap", "--workers", "0", "--json", "scores.json")
    assert result.exit_code == 0, result.output
    assert "mask_ap" in (in_tmp / "scores.json").read_text()
    frames = ShapesDataset("val", size=48, count=3)
    writer = cv2.VideoWriter("clip.avi", cv2.VideoWriter_fourcc(*"MJPG"), 5, (48, 48))
    for i in range(3):
        writer.write(cv2.cvtColor(frames.load(i)["image"], cv2.COLOR_RGB2BGR))
    writer.release()
    result = cli("infer", "runs/yolact/1/best.pt", "clip.avi", "--out", "pred")
    assert result.exit_code == 0, result.output
    video = cv2.VideoCapture(str(in_tmp / "pred" / "clip_overlay.avi"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
