"""The optimizer of PAL training: transformers-4.x AdamW, weight-decay parameter groups, the --optimizer choice."""
import math

import torch

HF4_ADAMW = dict(betas=(0.9, 0.999), eps=1e-6)  # transformers 4.x AdamW defaults, as the authors called it
SPEC_NO_DECAY_TYPES = (torch.nn.LayerNorm,)
AUTHORS_NO_DECAY_PATTERNS = ("bias", "ln", "LayerNorm.weight")


class HF4AdamW(torch.optim.Optimizer):
    """AdamW as transformers 4.x implemented it (the authors' optimizer).

    Differs from torch.optim.AdamW in two places: epsilon is added to sqrt(v) before bias correction (the bias
    correction scales the step size instead), and the decoupled weight decay is applied after the Adam update.
    """

    def __init__(self, params, lr, betas=HF4_ADAMW["betas"], eps=HF4_ADAMW["eps"], weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                step_size = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-step_size)
                if group["weight_decay"] > 0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])


def parameter_groups(model, weight_decay, rule):
    """[decayed, not decayed] parameter groups; trainable parameters only (strategy_alpha is frozen)."""
    if rule == "authors":
        exempt = {n for n, _ in model.named_parameters() if any(pat in n for pat in AUTHORS_NO_DECAY_PATTERNS)}
    else:
        exempt = {n for n, _ in model.named_parameters() if n.endswith("bias")}
        for module_name, module in model.named_modules():
            if isinstance(module, SPEC_NO_DECAY_TYPES):
                exempt |= {f"{module_name}.{n}" if module_name else n for n, _ in module.named_parameters()}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in trainable if n not in exempt], "weight_decay": weight_decay},
            {"params": [p for n, p in trainable if n in exempt], "weight_decay": 0.0}]


def build_optimizer(model, args):
    groups = parameter_groups(model, args.weight_decay, args.weight_decay_rule)
    if args.optimizer == "torch_adamw":
        return torch.optim.AdamW(groups, lr=args.learning_rate)
    return HF4AdamW(groups, lr=args.learning_rate)
