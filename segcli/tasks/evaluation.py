"""The one evaluation loop: a task's predictions on the val split, fed to its evaluator."""

from __future__ import annotations

import torch

from segcli.data.loader import eval_loader
from segcli.progress import tracked
from segcli.tasks import Evaluator, Task, TaskData


@torch.no_grad()
def run_evaluation(
    task: Task, model, data: TaskData, cfg, device, precision, dist
) -> tuple[dict, Evaluator]:
    """(scores over the val split of `data`, gathered over all ranks, the evaluator that made
    them: an instance evaluator keeps its COCO results). Each rank predicts its share with
    `model`, the bare module (not a DDP or compiled wrapper)."""
    loader = eval_loader(
        data.val, cfg.workers, dist.rank, dist.world_size, collate_fn=data.collate_fn
    )
    model.eval()
    evaluator = task.evaluator(data, cfg, device)
    evaluator.reset()
    for batch in tracked(loader, "evaluating"):
        evaluator.process(batch, task.predict_batch(model, batch, device, precision))
    return evaluator.summarize(), evaluator
