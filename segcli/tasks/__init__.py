"""The task modules the loop drives: each has build_data, compute_losses, validate, score_of,
results_table, summary_line, write_plots and sample_panels; eval's --plots and --report use
eval_plots, summary_table and class_table."""

from __future__ import annotations

import importlib

MODULES = {"semantic": "segcli.tasks.semantic", "instance": "segcli.tasks.instance"}


def get(task: str):
    return importlib.import_module(MODULES[task])
