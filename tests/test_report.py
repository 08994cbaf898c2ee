"""`segcli eval --plots DIR --report FILE`: the evaluation plots and the self-contained HTML
report, through the real CLI; the worst-image ranking by known answers; `--gt-json` without
torch; the page rendered by a real headless Chromium when one is installed."""

import base64
import json
import re
import shutil
import subprocess
import sys
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from segcli.data.coco import coco_from_dict, encode_masks
from segcli.report.worst import Lowest, image_f1, image_miou
from segcli.viz import label_image

from helpers import REPO, TINY_FCN, TINY_SHAPES

H, W = 60, 80
NAMES = {4: "<b>cat & co</b>", 9: "dog"}  # non-contiguous ids; a name that needs escaping


def square(x, y, side, shape=(H, W)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y : y + side, x : x + side] = True
    return mask


def write_coco_files(folder):
    """gt.json (image 1: a cat found exactly; image 2: a dog found as a cat, plus a missed
    cat; image 3: nothing, nothing found; image 4: a crowd region with a detection on it) and
    res.json (RLE masks with boxes)."""
    annotations, results = [], []

    def add(image_id, category, mask, crowd=0):
        rle = encode_masks(mask[None])[0]
        ys, xs = np.nonzero(mask)
        box = [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)]
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "bbox": box,
                            "category_id": category, "segmentation": rle,
                            "area": float(mask.sum()), "iscrowd": crowd})  # fmt: skip

    def found(image_id, category, mask, score):
        results.append({"image_id": image_id, "category_id": category, "score": score,
                        "segmentation": encode_masks(mask[None])[0]})  # fmt: skip

    add(1, 4, square(10, 10, 20))
    found(1, 4, square(10, 10, 20), 0.9)
    add(2, 9, square(40, 20, 16))
    add(2, 4, square(5, 5, 10))
    found(2, 4, square(40, 20, 16), 0.8)
    add(4, 9, square(0, 0, 40), crowd=1)
    found(4, 9, square(2, 2, 30), 0.7)
    images = [{"id": i, "file_name": f"im{i}.jpg", "height": H, "width": W} for i in (1, 2, 3, 4)]
    categories = [{"id": i, "name": n} for i, n in NAMES.items()]
    gt = {"images": images, "annotations": annotations, "categories": categories}
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "res.json").write_text(json.dumps(results))
    return gt, results


def data_images(page: str) -> list[bytes]:
    """The decoded bytes of every <img> of the page; each must be an inline data URI."""
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert all(s.startswith("data:image/") for s in sources), [s[:40] for s in sources]
    return [base64.b64decode(s.split(",", 1)[1]) for s in sources]


def test_image_f1_known_answers(tmp_path):
    gt, results = write_coco_files(tmp_path)
    coco = coco_from_dict(gt)
    by_image = {i: [r for r in results if r["image_id"] == i] for i in (1, 2, 3, 4)}
    assert image_f1(coco, 1, by_image[1]) == (1.0, 1, 0, 0)
    assert image_f1(coco, 2, by_image[2]) == (0.0, 0, 1, 2)  # wrong class: FP and FN
    assert image_f1(coco, 3, by_image[3]) == (1.0, 0, 0, 0)  # nothing to find, nothing found
    assert image_f1(coco, 4, by_image[4]) == (1.0, 0, 0, 0)  # on a crowd region: ignored
    shifted = [{**by_image[1][0], "segmentation": encode_masks(square(20, 10, 20)[None])[0]}]
    assert image_f1(coco, 1, shifted) == (0.0, 0, 1, 1)  # IoU 1/3 < 0.5


def test_image_miou_and_lowest_known_answers():
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 1]], np.uint8)
    # confusion rows [1,1,0], [0,3,0], [1,0,1] -> IoU 1/3, 3/4, 1/2
    assert image_miou(truth, pred, 3, 255) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert image_miou(truth, truth, 3, 255) == 1.0
    lowest = Lowest(3)
    for score, name in ((0.5, "a"), (0.1, "b"), (0.9, "c"), (0.5, "d"), (0.2, "e"), (0.5, "f")):
        lowest.add(score, name)
    assert lowest.items() == [(0.1, "b"), (0.2, "e"), (0.5, "a")]  # ties: dataset order


def test_gt_json_report_and_plots_without_torch(tmp_path):
    """A real subprocess: the whole --gt-json path, report and plots included, never imports
    torch; the page holds the scores, the escaped class names, the plots and the worst
    images, and nothing it would load from elsewhere."""
    write_coco_files(tmp_path)
    args = ["eval", "--gt-json", "gt.json", "--pred-json", "res.json", "--report-worst", "2",
            "--report", "out/report.html", "--plots", "plots", "--json", "s.json"]  # fmt: skip
    code = (
        "import sys\nfrom segcli.cli import app\ntry:\n    app(sys.argv[1:])\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nprint('TORCH-FREE')"
    )
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, text=True,
                         capture_output=True, timeout=120)  # fmt: skip
    assert run.returncode == 0 and "TORCH-FREE" in run.stdout, run.stdout + run.stderr
    scores = json.loads((tmp_path / "s.json").read_text())
    assert "mask_pr50" not in scores and "mask_ar100" in scores  # curves stay out of --json
    for name in ("pr_curve.png", "per_class_ap.png"):
        assert Image.open(tmp_path / "plots" / name).format == "PNG"
    page = (tmp_path / "out" / "report.html").read_text()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.html"]
    assert "&lt;b&gt;cat &amp; co&lt;/b&gt;" in page and "<b>cat" not in page
    assert f"{scores['mask_ap']:.4f}" in page and f"{scores['mask_ar100']:.4f}" in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page) and "url(" not in page
    pictures = data_images(page)
    assert len(pictures) == 2 + 2 * 3  # the plots, then 3 panels for each of the 2 worst
    assert all(Image.open(BytesIO(p)).size[0] > 0 for p in pictures)
    # the worst: image 2 (F1 0) first, then image 1 (F1 1; ties keep the dataset's order)
    assert page.index("im2.jpg") < page.index("im1.jpg") and "im3.jpg" not in page
    assert "mask F1@0.5 0.000 (TP 0, FP 1, FN 2)" in page


def test_semantic_checkpoint_report_and_run_plots(cli, in_tmp):
    result = cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "2")
    assert result.exit_code == 0, result.output
    run = in_tmp / "runs" / "fcn8s" / "1"
    for name in ("per_class_iou.png", "confusion.png", "curves.png"):
        assert Image.open(run / name).format == "PNG", name
    result = cli("eval", "--report", "r.html", "--report-worst", "3", "--plots", "p",
                 "--workers", "0", "--json", "s.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (in_tmp / "p").iterdir()) == ["confusion.png",
                                                               "per_class_iou.png"]  # fmt: skip
    page = (in_tmp / "r.html").read_text()
    assert len(data_images(page)) == 2 + 3 * 3
    found = [float(v) for v in re.findall(r"image mIoU ([0-9.]+)", page)]
    assert len(found) == 3 and found == sorted(found)
    miou = json.loads((in_tmp / "s.json").read_text())["miou"]
    assert f"{miou:.4f}" in page and "false negative" in page


def test_pred_gt_report_ranks_the_worst_pair_first(cli, in_tmp):
    good = np.array([[0, 1], [2, 2]], np.uint8)
    bad = np.array([[1, 1], [0, 2]], np.uint8)  # truth good: IoU 0, 1/2, 1/2 -> mIoU 1/3
    for folder, pairs in (("gt", {"a": good, "b": good}), ("pred", {"a": good, "b": bad})):
        (in_tmp / folder).mkdir()
        for stem, array in pairs.items():
            label_image(array).save(in_tmp / folder / f"{stem}.png")
    result = cli("eval", "--pred", "pred", "--gt", "gt", "--num-classes", "3",
                 "--report", "r.html")  # fmt: skip
    assert result.exit_code == 0, result.output
    page = (in_tmp / "r.html").read_text()
    assert page.index("image mIoU 0.333") < page.index("image mIoU 1.000")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--report", "folder"], "--report folder: is a folder"),
        (["--report", "r.html", "--report-worst", "-1"], "--report-worst -1: must be 0 or more"),
        (["--plots", "file.txt"], "--plots file.txt: is a file"),
        (["--report", "file.txt/r.html"], "file.txt/r.html: cannot write there"),
    ],
)
def test_bad_outputs_are_refused_before_any_work(cli, in_tmp, extra, message):
    write_coco_files(in_tmp)
    (in_tmp / "folder").mkdir()
    (in_tmp / "file.txt").write_text("x")
    before = sorted(p.name for p in in_tmp.iterdir())
    result = cli("eval", "--gt-json", "gt.json", "--pred-json", "res.json", "--json", "s.json",
                 *extra)  # fmt: skip
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in in_tmp.iterdir()) == before  # not even s.json


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# written into the page's copy: how many images the browser decoded, once they have loaded
COUNTER = (
    "<script>addEventListener('load', () => { const p = document.createElement('p');"
    " p.id = 'decoded'; p.textContent = 'decoded ' + [...document.images].filter("
    "i => i.complete && i.naturalWidth > 0).length + ' of ' + document.images.length;"
    " document.body.append(p); });</script>"
)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(cli, in_tmp):
    write_coco_files(in_tmp)
    result = cli("eval", "--gt-json", "gt.json", "--pred-json", "res.json", "--report", "r.html")
    assert result.exit_code == 0, result.output
    page = (in_tmp / "r.html").read_text()
    probe = in_tmp / "probe.html"
    probe.write_text(page.replace("</body>", COUNTER + "</body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={in_tmp / 'profile'}"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    images = len(data_images(page))
    assert f"decoded {images} of {images}" in dom.stdout, dom.stdout[-500:] + dom.stderr[-500:]
    shot = in_tmp / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,2000",
                    (in_tmp / "r.html").as_uri()], capture_output=True, timeout=120)  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 50 and (pixels < 100).mean() > 0.001  # text and plots, not blank


def test_report_module_has_no_external_resources():
    """The template itself names no stylesheet, script or font from elsewhere."""
    source = (REPO / "segcli" / "report" / "html.py").read_text()
    assert "http" not in source and "<link" not in source and "<script" not in source
