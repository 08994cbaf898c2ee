"""Packaging rules from DESIGN.md: recipes import as segcli.recipes, python -m segcli works,
the wheel holds every package."""

import ast
import shutil
import subprocess
import sys
import zipfile

import segcli.recipes

from helpers import REPO, run_segcli


def python_files():
    for folder in ("segcli", "recipes", "tests", "scripts"):
        yield from (REPO / folder).rglob("*.py")


def test_nothing_imports_top_level_recipes():
    """`recipes.x` and `segcli.recipes.x` would be two different module objects."""
    offenders = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [
                f"{path}: {n}" for n in names if n == "recipes" or n.startswith("recipes.")
            ]
    assert offenders == []


def test_recipes_package_is_the_installed_mapping():
    assert segcli.recipes.__name__ == "segcli.recipes"
    assert "recipes" not in sys.modules


def test_engine_data_metrics_nn_ops_never_import_a_recipe():
    for folder in ("engine", "data", "metrics", "nn", "ops"):
        for path in (REPO / "segcli" / folder).rglob("*.py"):
            assert "segcli.recipes" not in path.read_text(), path


def test_python_m_segcli_lists_recipes(tmp_path):
    result = run_segcli("recipes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fcn8s" in result.stdout and "unet" in result.stdout


WHEEL_SOURCES = ("segcli", "recipes", "setup.cfg", "pyproject.toml", "README.md")


def source_packages() -> set[str]:
    """segcli/** and recipes/ (installed as segcli.recipes): every folder with an __init__.py."""
    found = set()
    for root, name in (("segcli", "segcli"), ("recipes", "segcli.recipes")):
        for init in (REPO / root).rglob("__init__.py"):
            found.add(".".join((name, *init.parent.relative_to(REPO / root).parts)))
    return found


def test_wheel_contains_every_package(tmp_path):
    """setup.cfg lists the packages by hand: one not listed would be missing from every
    install but an editable one."""
    source = tmp_path / "src"  # a copy: the build leaves build/ and *.egg-info beside it
    for name in WHEEL_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(REPO / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("segcli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packaged = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("__init__.py")}
    expected = source_packages()
    assert {"segcli", "segcli.engine", "segcli.recipes", "segcli.data.labelme"} <= expected
    assert expected - packaged == set(), "list these packages in setup.cfg [options] packages"
    recipes = {f"segcli/recipes/{p.name}" for p in (REPO / "recipes").glob("*.py")}
    assert recipes <= set(names)
