"""Every recipe, parametrized over list_recipes(): builds, trains a step, evaluates at any size."""

import pytest
import torch

from segcli.engine import tasks
from segcli.recipe import list_recipes

ODD_SIZE = (67, 45)  # H, W: not a multiple of any network stride
RECIPES = list_recipes()


def semantic_step(recipe, model, num_classes):
    images = torch.randn(2, 3, *ODD_SIZE)
    target = torch.randint(0, num_classes, (2, *ODD_SIZE))
    target[:, :4] = 255
    outputs = model(images)
    criterion = recipe.criterion or tasks.get("semantic").cross_entropy
    return criterion(outputs, target, 255)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_train_steps_reach_every_trainable_parameter(recipe):
    torch.manual_seed(0)
    model = recipe.build_model(3, **recipe.options).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    # The first step moves zero-initialised score layers (FCN) so the second reaches everything.
    for step in range(2):
        optimizer.zero_grad()
        losses = semantic_step(recipe, model, 3)
        loss = sum(losses.values())
        assert torch.isfinite(loss), losses
        loss.backward()
        if step == 0:
            optimizer.step()
    silent = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert silent == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_eval_output_has_input_size(recipe):
    model = recipe.build_model(5, **recipe.options).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *ODD_SIZE))
    assert logits.shape == (1, 5, *ODD_SIZE)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_recipe_declares_paper_and_cited_defaults(recipe):
    assert recipe.paper and "arXiv:" in recipe.paper
    assert recipe.defaults, "the paper's training settings belong in defaults"
    assert recipe.count_parameters() > 0
