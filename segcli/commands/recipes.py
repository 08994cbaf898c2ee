"""`segcli recipes`: the table of every recipe."""

from __future__ import annotations

from rich.table import Table

from segcli.recipe import list_recipes


def recipes_table() -> Table:
    """Name, task, paper and parameters (VOC 21 / COCO 81 classes) of every recipe."""
    table = Table(title="segcli recipes")
    for column in ("name", "task", "paper", "parameters"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for recipe in list_recipes():
        parameters = f"{recipe.count_parameters() / 1e6:.1f}M"
        table.add_row(recipe.name, recipe.task, recipe.paper, parameters)
    return table
