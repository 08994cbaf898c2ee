"""`segcli eval --metric pq` on COCO panoptic files through the real CLI: scores, folder
discovery, the JSON, and one-line errors for bad files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from segcli.data.panoptic import read_segment_png, save_segment_png, segments_info
from segcli.data.panoptic import write_panoptic_json as write_json
from segcli.data.shapes_panoptic import write_shapes_panoptic

from helpers import run_segcli

CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 2, "name": "sky", "isthing": 0},
    {"id": 3, "name": "car", "isthing": 1},  # in neither file: null in the JSON
]


def write_panoptic(json_path, images: dict) -> None:
    """A panoptic json and its PNG folder; images: image_id -> (ids [H,W], {id: category})."""
    folder = json_path.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for image_id, (ids, categories) in images.items():
        name = f"img{image_id}.png"
        save_segment_png(folder / name, np.asarray(ids))
        segs = [{"id": i, "category_id": c} for i, c in categories.items()]
        entries.append({"id": image_id, "file_name": f"img{image_id}.jpg"})
        annotations.append(
            {"image_id": image_id, "file_name": name, "segments_info": segments_info(ids, segs)}
        )
    write_json(json_path, entries, annotations, CATEGORIES)


def split_case(root):
    """Ground truth: one person (16 px) and sky; prediction: the person split 10 / 6."""
    gt = np.array([[1] * 4] * 4 + [[2] * 4])
    pred = np.array([[5] * 4, [5] * 4, [5, 5, 6, 6], [6] * 4, [9] * 4])
    write_panoptic(root / "gt.json", {1: (gt, {1: 1, 2: 2})})
    write_panoptic(root / "pred.json", {1: (pred, {5: 1, 6: 1, 9: 2})})
    return root / "gt.json", root / "pred.json"


def user_error(result, *fragments) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_pq_of_a_split_person_with_json(cli, in_tmp):
    gt, pred = split_case(in_tmp)
    result = cli(
        "eval", "--metric", "pq", "--gt-panoptic", gt, "--pred-panoptic", pred, "--json", "pq.json"
    )
    assert result.exit_code == 0, result.output
    assert "pq: 0.7083" in result.output  # (10/16 / 1.5 + 1) / 2
    scores = json.loads((in_tmp / "pq.json").read_text())
    person = scores["per_class"]["1"]
    assert (person["tp"], person["fp"], person["fn"]) == (1, 1, 0)
    assert person["pq"] == pytest.approx(10 / 16 / 1.5)
    assert scores["pq_stuff"] == 1.0 and scores["n"] == 2
    assert scores["per_class"]["3"]["pq"] is None and scores["per_class"]["3"]["name"] == "car"


def test_folders_may_be_named_explicitly(cli, in_tmp):
    gt, pred = split_case(in_tmp)
    shutil.move(in_tmp / "pred", in_tmp / "elsewhere")
    result = cli("eval", "--gt-panoptic", gt, "--pred-panoptic", pred)
    user_error(result, f"{in_tmp / 'pred'}: segment PNG folder not found", "pred.json")
    result = cli(
        "eval",
        "--gt-panoptic",
        gt,
        "--pred-panoptic",
        pred,
        "--pred-panoptic-dir",
        in_tmp / "elsewhere",
    )
    assert result.exit_code == 0 and "pq: 0.7083" in result.output


def test_shapes_ground_truth_against_itself_through_the_installed_command(in_tmp):
    write_shapes_panoptic(in_tmp / "gt.json", size=32, count=4)
    shutil.copytree(in_tmp / "gt", in_tmp / "pred")
    shutil.copy(in_tmp / "gt.json", in_tmp / "pred.json")
    result = run_segcli(
        "eval",
        "--metric",
        "pq",
        "--gt-panoptic",
        "gt.json",
        "--pred-panoptic",
        "pred.json",
        cwd=in_tmp,
    )
    assert result.returncode == 0, result.stderr
    assert "pq: 1.0000" in result.stdout and "background" in result.stdout


def _case_with(root, change):
    """The split case with one thing changed: change(gt_doc, pred_doc, root)."""
    split_case(root)
    docs = [json.loads((root / f"{side}.json").read_text()) for side in ("gt", "pred")]
    change(*docs, root)
    for side, doc in zip(("gt", "pred"), docs):
        (root / f"{side}.json").write_text(json.dumps(doc))


def _save(root, side, ids):
    save_segment_png(root / side / "img1.png", np.array(ids))


BAD_CASES = {
    "missing prediction": (
        lambda g, p, r: p.update(annotations=[]),
        ["pred.json", "no prediction for image 1 of gt.json"],
    ),
    "extra prediction": (
        lambda g, p, r: p["annotations"].append({**p["annotations"][0], "image_id": 2}),
        ["pred.json", "image 2 is not an image of gt.json"],
    ),
    "other size": (
        lambda g, p, r: _save(r, "pred", np.ones((4, 4), int) * 5),
        ["img1.png: is 4x4 but its ground truth", "is 4x5"],
    ),
    "id not listed": (
        lambda g, p, r: p["annotations"][0]["segments_info"].pop(),
        ["pred/img1.png: segment id 9 is in the PNG but not in segments_info"],
    ),
    "listed id not drawn": (
        lambda g, p, r: g["annotations"][0]["segments_info"].append({"id": 7, "category_id": 1}),
        ["gt/img1.png: segments_info lists segment 7, which has no pixel"],
    ),
    "unknown category": (
        lambda g, p, r: p["annotations"][0]["segments_info"][0].update(category_id=99),
        ["pred.json: image 1: segment 5 has category_id 99, not a category of gt.json"],
    ),
    "gt unknown category": (
        lambda g, p, r: g["annotations"][0]["segments_info"][0].update(category_id=99),
        ["gt.json: annotation of image 1 has segment 1 of unknown category_id 99"],
    ),
    "no categories": (lambda g, p, r: g.pop("categories"), ["gt.json: no 'categories' list"]),
    "segment id 0": (
        lambda g, p, r: p["annotations"][0]["segments_info"][0].update(id=0),
        ["pred.json: annotation of image 1 has segment id 0, outside 1..16777215 (0 is VOID)"],
    ),
    "grey png": (
        lambda g, p, r: Image.fromarray(np.zeros((5, 4), np.uint8)).save(r / "pred" / "img1.png"),
        ["pred/img1.png: a L image, expected an RGB PNG of segment ids"],
    ),
    "missing png": (
        lambda g, p, r: (r / "gt" / "img1.png").unlink(),
        ["gt/img1.png: segment PNG not found"],
    ),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_files_are_one_line_naming_the_file(cli, in_tmp, case):
    change, fragments = BAD_CASES[case]
    _case_with(in_tmp, change)
    result = cli(
        "eval", "--gt-panoptic", "gt.json", "--pred-panoptic", "pred.json", "--json", "out.json"
    )
    user_error(result, *fragments)
    assert not (in_tmp / "out.json").exists()


def test_malformed_json_is_one_line(cli, in_tmp):
    split_case(in_tmp)
    (in_tmp / "pred.json").write_text("{")
    user_error(
        cli("eval", "--gt-panoptic", "gt.json", "--pred-panoptic", "pred.json"),
        "pred.json: malformed JSON",
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--metric", "pq"], "give --gt-panoptic and --pred-panoptic"),
        (["--gt-panoptic", "gt.json"], "give --gt-panoptic and --pred-panoptic"),
        (
            ["--metric", "miou", "--gt-panoptic", "gt.json", "--pred-panoptic", "p.json"],
            "--metric miou: COCO panoptic files give pq",
        ),
        (["best.pt", "--gt-panoptic", "gt.json", "--pred-panoptic", "p.json"], "no checkpoint"),
        (["--crf", "--gt-panoptic", "gt.json", "--pred-panoptic", "p.json"], "--crf"),
    ],
)
def test_panoptic_flags_are_checked(cli, args, fragment):
    user_error(cli("eval", *args), fragment)


def test_segment_png_round_trip(tmp_path):
    ids = np.array([[0, 1, 255], [256, 65536, 256**3 - 1]])
    save_segment_png(tmp_path / "x.png", ids)
    assert (read_segment_png(tmp_path / "x.png") == ids).all()
    rgb = np.asarray(Image.open(tmp_path / "x.png"))
    assert rgb[1, 0].tolist() == [0, 1, 0] and rgb[1, 1].tolist() == [0, 0, 1]
