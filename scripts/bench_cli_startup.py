"""Wall time of torch-free CLI answers (`train --help`, `train RECIPE --show-config`, a wrong
`--set` key) in this tree against a baseline git revision, the two runs of each command
alternating in one session; prints medians and the ratio this/baseline. The baseline is
extracted with `git archive` into a temporary folder and run with PYTHONPATH set to it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "train --help": ["train", "--help"],
    "train fcn8s --show-config": ["train", "fcn8s", "--show-config"],
    "train mask_rcnn --set learning_rate=1": ["train", "mask_rcnn", "--set", "learning_rate=1"],
}


def extract(revision: str, folder: Path) -> None:
    """`revision`'s tree in `folder`, with recipes/ reachable as segcli.recipes (setup.cfg's
    package_dir, which an editable install would give)."""
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    (folder / "segcli" / "recipes").symlink_to(folder / "recipes")


def seconds(args: list[str], pythonpath: str | None, cwd: Path) -> float:
    """One run of `segcli ARGS` from the empty `cwd` (so that no tree shadows the other): this
    tree's installed segcli, or the one on `pythonpath`."""
    env = {**os.environ, "COLUMNS": "100"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "segcli", *args], env=env, cwd=cwd, capture_output=True
    )
    elapsed = time.perf_counter() - start
    assert done.returncode in (0, 2), done.stderr.decode()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD~1", help="git revision to compare with")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as empty:
        extract(args.baseline, Path(folder))
        for name, command in COMMANDS.items():
            times = {"this": [], "baseline": []}
            for _ in range(args.repeats):
                times["this"].append(seconds(command, None, Path(empty)))
                times["baseline"].append(seconds(command, folder, Path(empty)))
            this, base = median(times["this"]), median(times["baseline"])
            print(f"{name:45s} this {this:.3f} s  baseline {base:.3f} s  ratio {this / base:.2f}")


if __name__ == "__main__":
    main()
