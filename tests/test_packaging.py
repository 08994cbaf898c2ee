"""Packaging rules from DESIGN.md: recipes import as segcli.recipes, python -m segcli works."""

import ast
import sys

import segcli.recipes

from conftest import REPO, run_segcli


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
