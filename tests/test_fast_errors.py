"""`segcli --help` and the user errors that need no model answer before torch is imported
(importing torch and torchvision alone takes seconds on a laptop)."""

import subprocess
import sys

import pytest

# Runs the CLI in a fresh interpreter and reports whether torch got imported.
PROBE = """
import sys
from typer.testing import CliRunner
from segcli.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print("EXIT", result.exit_code, "TORCH", "torch" in sys.modules)
print(result.output)
"""


def probe(*args: str, cwd) -> tuple[int, bool, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    first, _, output = done.stdout.partition("\n")
    _, code, _, torch = first.split()
    return int(code), torch == "True", output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--help"], "Train, evaluate"),
        (["train", "fcn8z"], "unknown recipe 'fcn8z'; did you mean fcn8s"),
        (["train", "mask_rcnn", "--set", "learning_rate=0.1"], "did you mean lr"),
        (["train", "yolact", "--set", "optimizer=adamx"], "optimizer"),
        (["train", "unet", "--lr", "-1"], "lr"),
        (["train", "fcn8s", "--show-config"], "resolved config"),
        (["eval", "missing.pt"], "missing.pt: checkpoint not found"),
        (["infer", "notes.txt", "photo.jpg"], "notes.txt: not a checkpoint: a text file"),
        (["export", "missing.pt"], "missing.pt: checkpoint not found"),
        (["train", "fcn8s", "--data", "no_such_dir"], "no_such_dir: dataset folder not found"),
        (["benchmark", "yolakt"], "unknown recipe 'yolakt'"),
        (["superpixels", "no_such.jpg"], "no_such.jpg: no such file or folder"),
    ],
)
def test_answers_without_importing_torch(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("not a model\n")
    code, torch_imported, output = probe(*args, cwd=tmp_path)
    assert message in " ".join(output.split()), output
    assert code in (0, 2) and not torch_imported
