"""pal.optim: the foreach form of the transformers 4.x AdamW is bit-identical to its per-tensor loop."""
import copy

import pytest
import torch

from pal.model import build_model
from pal.optim import HF4AdamW, parameter_groups
from helpers.pal_models import CONTEXTS, PERSONAS, RESPONSES, make_batch, randomize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_steps(model, batch, foreach, rule, steps):
    optimizer = HF4AdamW(parameter_groups(model, 0.1, rule), lr=1e-2, foreach=foreach)
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return optimizer


@pytest.mark.parametrize("rule", ["spec", "authors"])
def test_foreach_adamw_is_bit_identical_to_the_loop(tiny_blender_dir, rule):
    toker, model = build_model("strat", pretrained_model_path=tiny_blender_dir)
    model = randomize(model, std=0.2).eval()  # eval: no dropout, so both copies see the same gradients
    batch = make_batch(toker, CONTEXTS, PERSONAS, RESPONSES, [0, 4, 2])
    loop_model, foreach_model = copy.deepcopy(model), copy.deepcopy(model)
    loop_opt = run_steps(loop_model, batch, False, rule, steps=4)
    foreach_opt = run_steps(foreach_model, batch, True, rule, steps=4)
    assert all(g["weight_decay"] > 0 and g["params"] for g in foreach_opt.param_groups[:1])  # decay is exercised
    for (name, a), b, start in zip(loop_model.named_parameters(), foreach_model.parameters(), model.parameters()):
        assert torch.equal(a, b), name
        if a.requires_grad:
            assert not torch.equal(a, start), name  # every trainable tensor moved
    for a, b in zip(loop_opt.state.values(), foreach_opt.state.values()):
        assert a["step"] == b["step"] == 4
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_tensors_that_start_late_keep_their_own_step_count():
    """A tensor whose first gradient comes later has a smaller step count: its bias correction must differ."""
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    a2, b2 = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opts = [HF4AdamW([a, b], lr=0.1, foreach=True), HF4AdamW([a2, b2], lr=0.1, foreach=False)]
    for step in range(3):
        for (p, q), opt in zip(((a, b), (a2, b2)), opts):
            p.grad = torch.full((3,), 0.5)
            q.grad = torch.full((3,), -0.3) if step else None
            opt.step()
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert opts[0].state[a]["step"] == 3 and opts[0].state[b]["step"] == 2
