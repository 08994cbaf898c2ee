"""One declaration per setting: recipe options come from build_model's signature, train flags
from TrainConfig's flag() fields."""

import functools
import inspect
import re
import subprocess
import sys

import pytest

from segcli.builder_options import builder_options
from segcli.config import FLAGS
from segcli.recipe import list_recipes
from segcli.recipes.nets import mask_rcnn, ms_rcnn, yolact
from segcli.settings import flag_name

# Builders that take **options and pass them on: the callee declares the options.
FORWARDS = {ms_rcnn.build_ms_rcnn: mask_rcnn.build_mask_rcnn, yolact.build_yolact: yolact.Yolact}


def signature_options(builder) -> dict:
    """The keyword defaults of the imported builder, as inspect sees them."""
    if isinstance(builder, functools.partial):
        inner = signature_options(builder.func)
        return {k: v for k, v in inner.items() if k not in builder.keywords}
    parameters = inspect.signature(builder).parameters.values()
    own = {
        p.name: p.default for p in parameters if p.default is not p.empty and p.name != "pretrained"
    }
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return {**signature_options(FORWARDS[builder]), **own}
    return own


@pytest.mark.parametrize("recipe", list_recipes(), ids=lambda r: r.name)
def test_recipe_options_are_the_builder_signature_defaults(recipe):
    declared = signature_options(recipe.build_model)
    assert recipe.options == {**declared, **recipe.option_overrides}
    assert list(recipe.options) == list(declared)
    for key, value in recipe.option_overrides.items():  # an override that changes nothing
        assert declared[key] != value, key


@pytest.fixture
def run_python(tmp_path):
    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def test_options_are_read_without_importing_torch(run_python):
    code = (
        "import sys\nfrom segcli.recipe import list_recipes\n"
        "options = [r.options for r in list_recipes()]\n"
        "print(len(options), 'torch' in sys.modules)"
    )
    assert run_python(code).split() == [str(len(list_recipes())), "False"]


NETWORK = """
from functools import partial
from other_net import SIZES as ANCHORS

WIDTH = 64
DEPTH, RATE = 3, 0.5


class Net:
    def __init__(self, num_classes, backbone="r18", width=WIDTH, pretrained=False):
        pass


def build(num_classes, pretrained=False, depth=DEPTH, **options):
    return Net(num_classes, pretrained=pretrained, backbone="r50", **options)


def build_anchored(num_classes, pretrained=False, anchors=ANCHORS, rate=RATE):
    pass


build_narrow = partial(build, depth=1)


def build_computed(num_classes, pretrained=False, size=2 ** 9 + WIDTH):
    pass
"""


def test_builder_options_follow_classes_partials_forwarding_and_constants(tmp_path, monkeypatch):
    (tmp_path / "toy_net.py").write_text(NETWORK)
    (tmp_path / "other_net.py").write_text("SIZES = (8, 16)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert builder_options("toy_net:Net") == {"backbone": "r18", "width": 64}
    # backbone is passed explicitly, so only width comes through **options
    assert builder_options("toy_net:build") == {"width": 64, "depth": 3}
    assert builder_options("toy_net:build_narrow") == {"width": 64}
    assert builder_options("toy_net:build_anchored") == {"anchors": (8, 16), "rate": 0.5}
    with pytest.raises(ValueError, match="is not a literal"):
        builder_options("toy_net:build_computed")
    with pytest.raises(ValueError, match="no top-level missing"):
        builder_options("toy_net:missing")
    assert "toy_net" not in sys.modules  # read, never imported


def plain_help(output: str) -> str:
    """--help without rich's box characters, each run of whitespace one space."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())


def test_every_flag_setting_is_a_train_option_with_its_help(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich shortens a word longer than the column
    shown = plain_help(cli("train", "--help").output)
    assert len(FLAGS) == 17
    for key, help_text in FLAGS.items():
        assert flag_name(key) in shown and " ".join(help_text.split()) in shown, key
    assert "--no-amp" in shown and "--no-pretrained" in shown
    assert "--set" in shown and "--config" in shown and "--show-config" in shown


def test_flag_values_land_in_the_flag_layer(cli):
    result = cli("train", "fcn8s", "--batch-size", "3", "--no-amp", "--freeze", "heads",
                 "--show-config")  # fmt: skip
    rows = [line.split("│")[1:4] for line in result.output.splitlines() if line.count("│") == 4]
    shown = {name.strip(): (value.strip(), origin.strip()) for name, value, origin in rows}
    for key, value in (("batch_size", "3"), ("amp", "False"), ("freeze", "'heads'")):
        assert shown[key] == (value, "flag")


def test_flag_rule_errors_name_the_flag(cli):
    result = cli("train", "fcn8s", "--workers", "-1")
    assert result.exit_code == 2
    assert "error: --workers -1: must be at least 0" in result.output


def test_unknown_model_option_gets_did_you_mean(cli):
    result = cli("train", "deeplabv3", "--set", "output_strid=8")
    assert result.exit_code == 2
    assert "unknown setting 'output_strid' for recipe deeplabv3; did you mean output_stride?" in (
        result.output
    )
