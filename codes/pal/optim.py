"""The optimizer the authors trained with (transformers 4.x AdamW) and the weight-decay parameter groups.

`HF4AdamW` runs each parameter group as a handful of `torch._foreach_*` calls (one kernel per op for the whole group
on a GPU, instead of ~8 per tensor); `HF4AdamW(..., foreach=False)` is the per-tensor loop, kept as the readable
reference: both give bit-identical parameters (tests/test_optim.py).
"""
import math
from dataclasses import dataclass

import torch

HF4_ADAMW = dict(betas=(0.9, 0.999), eps=1e-6)  # transformers 4.x AdamW defaults, as the authors called it
NO_DECAY_TYPES = (torch.nn.LayerNorm,)
AUTHORS_NO_DECAY_PATTERNS = ("bias", "ln", "LayerNorm.weight")


class HF4AdamW(torch.optim.Optimizer):
    """AdamW as transformers 4.x implemented it (the authors' optimizer).

    Differs from torch.optim.AdamW in two places: epsilon is added to sqrt(v) before bias correction (the bias
    correction scales the step size instead), and the decoupled weight decay is applied after the Adam update.
    """

    def __init__(self, params, lr, betas=HF4_ADAMW["betas"], eps=HF4_ADAMW["eps"], weight_decay=0.0, foreach=True):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.foreach = foreach

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
            # The step count is a python int per tensor; tensors of a group start together, so they share it.
            steps = {self.state[p]["step"] for p in params}
            if self.foreach and len(steps) == 1:
                _foreach_update(params, [self.state[p] for p in params], group, steps.pop())
            else:
                for p in params:
                    _single_update(p, self.state[p], group)


def _step_size(group, t):
    beta1, beta2 = group["betas"]
    return group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)


def _single_update(p, state, group):
    """The transformers 4.x loop body for one tensor."""
    beta1, beta2 = group["betas"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
    p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-_step_size(group, state["step"]))
    if group["weight_decay"] > 0:
        p.add_(p, alpha=-group["lr"] * group["weight_decay"])


def _foreach_update(params, states, group, t):
    """_single_update for a whole group: the same ops in the same order, elementwise, so the same bits."""
    beta1, beta2 = group["betas"]
    grads = [p.grad for p in params]
    m = [s["exp_avg"] for s in states]
    v = [s["exp_avg_sq"] for s in states]
    torch._foreach_mul_(m, beta1)
    torch._foreach_add_(m, grads, alpha=1 - beta1)
    torch._foreach_mul_(v, beta2)
    torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
    denom = torch._foreach_sqrt(v)
    torch._foreach_add_(denom, group["eps"])
    torch._foreach_addcdiv_(params, m, denom, value=-_step_size(group, t))
    if group["weight_decay"] > 0:
        torch._foreach_add_(params, params, alpha=-group["lr"] * group["weight_decay"])


def parameter_groups(model, weight_decay, rule):
    """[decayed, not decayed] parameter groups; trainable parameters only (strategy_alpha is frozen).

    rule "authors": names containing bias, ln or LayerNorm.weight are exempt (the released code); "spec": biases and
    every LayerNorm parameter are exempt."""
    if rule == "authors":
        exempt = {n for n, _ in model.named_parameters() if any(pat in n for pat in AUTHORS_NO_DECAY_PATTERNS)}
    else:
        exempt = {n for n, _ in model.named_parameters() if n.endswith("bias")}
        for module_name, module in model.named_modules():
            if isinstance(module, NO_DECAY_TYPES):
                exempt |= {f"{module_name}.{n}" if module_name else n for n, _ in module.named_parameters()}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in trainable if n not in exempt], "weight_decay": weight_decay},
            {"params": [p for n, p in trainable if n in exempt], "weight_decay": 0.0}]


@dataclass(frozen=True)
class OptimizerOptions:
    """What train.py's optimizer is built from (docs/reproduction.md#training)."""
    learning_rate: float
    weight_decay: float = 0.01
    weight_decay_rule: str = "spec"  # or "authors": parameter_groups
    optimizer: str = "hf4_adamw"  # or "torch_adamw"


def build_optimizer(model, options):
    """The optimizer over `model`'s weight-decay groups, as OptimizerOptions say."""
    groups = parameter_groups(model, options.weight_decay, options.weight_decay_rule)
    if options.optimizer == "torch_adamw":
        return torch.optim.AdamW(groups, lr=options.learning_rate)
    return HF4AdamW(groups, lr=options.learning_rate)
