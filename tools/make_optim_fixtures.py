#!/usr/bin/python3
"""Reference fixtures for lathe's optimizer tests (tests/test_optim.cpp), computed by PyTorch 1.13.

Run from the repository root with the system Python, which has Debian's python3-torch:

    /usr/bin/python3 tools/make_optim_fixtures.py

It rewrites tests/fixtures/optim/:
  <config>.json        one optimizer configuration (sgd_plain, sgd_momentum, sgd_nesterov,
                       adam_default, adam_weight_decay, adamw): the options, the initial float64
                       parameters "w" [3,2] and "b" [2], and for each of 5 steps the gradients fed
                       to the optimizer and the parameters after that step.
  schedules.json       learning rates for steps 0..N of StepLR and of linear-warmup cosine decay
                       (computed by torch's StepLR and LambdaLR).
  clip_grad_norm.json  gradients before clipping, max_norm, the returned norm, and the gradients
                       after torch.nn.utils.clip_grad_norm_.

The problem is tiny and fixed: loss = sum((tanh(x @ w + b) - y)^2) for a fixed x [4,3] and
y [4,2], with gradients from autograd. The C++ tests feed the recorded gradients to lathe, so they
check the update rules, not autograd. Floats are written by json (repr: shortest round-trip
form), so they parse back bit-exactly. The output is deterministic; rerun only to change configs.
"""
import json
import math
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "optim"
STEPS = 5
PARAM_NAMES = ["w", "b"]

X = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.5], [0.3, -0.6, 0.9]]
Y = [[0.2, -0.4], [0.9, 0.1], [-0.5, 0.7], [0.0, 0.3]]
W0 = [[0.1, -0.2], [0.3, 0.05], [-0.15, 0.25]]
B0 = [0.01, -0.02]

CONFIGS = {
    "sgd_plain": ("sgd", dict(learning_rate=0.1)),
    "sgd_momentum": ("sgd", dict(learning_rate=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd_nesterov": ("sgd", dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam_default": ("adam", dict()),
    "adam_weight_decay": ("adam", dict(learning_rate=0.05, beta1=0.8, beta2=0.99, epsilon=1e-6,
                                       weight_decay=0.1)),
    "adamw": ("adamw", dict(learning_rate=0.05, weight_decay=0.1)),
}


def make_params():
    return {"w": torch.tensor(W0, dtype=torch.float64, requires_grad=True),
            "b": torch.tensor(B0, dtype=torch.float64, requires_grad=True)}


def loss_of(params):
    x = torch.tensor(X, dtype=torch.float64)
    y = torch.tensor(Y, dtype=torch.float64)
    return ((torch.tanh(x @ params["w"] + params["b"]) - y) ** 2).sum()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def make_torch_optimizer(kind, options, params):
    group = [params[n] for n in PARAM_NAMES]
    if kind == "sgd":
        return torch.optim.SGD(group, lr=options["learning_rate"],
                               momentum=options.get("momentum", 0.0),
                               dampening=options.get("dampening", 0.0),
                               weight_decay=options.get("weight_decay", 0.0),
                               nesterov=options.get("nesterov", False))
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    defaults = cls([torch.zeros(1, requires_grad=True)]).defaults
    return cls(group, lr=options.get("learning_rate", defaults["lr"]),
               betas=(options.get("beta1", defaults["betas"][0]),
                      options.get("beta2", defaults["betas"][1])),
               eps=options.get("epsilon", defaults["eps"]),
               weight_decay=options.get("weight_decay", defaults["weight_decay"]))


def optimizer_fixture(kind, options):
    params = make_params()
    optimizer = make_torch_optimizer(kind, options, params)
    # Record every option torch actually used, so the C++ side needs no defaults of its own.
    group = optimizer.param_groups[0]
    if kind == "sgd":
        used = dict(learning_rate=group["lr"], momentum=group["momentum"],
                    dampening=group["dampening"], weight_decay=group["weight_decay"],
                    nesterov=group["nesterov"])
    else:
        used = dict(learning_rate=group["lr"], beta1=group["betas"][0], beta2=group["betas"][1],
                    epsilon=group["eps"], weight_decay=group["weight_decay"])
    fixture = {
        "torch_version": torch.__version__,
        "optimizer": kind,
        "options": used,
        "param_names": PARAM_NAMES,
        "shapes": {n: list(params[n].shape) for n in PARAM_NAMES},
        "initial": {n: flat(params[n]) for n in PARAM_NAMES},
        "steps": [],
    }
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss_of(params).backward()
        grads = {n: flat(params[n].grad) for n in PARAM_NAMES}
        optimizer.step()
        fixture["steps"].append({"grads": grads, "params": {n: flat(params[n]) for n in PARAM_NAMES}})
    return fixture


def schedule_values(base, make_scheduler, count):
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=base)
    scheduler = make_scheduler(optimizer)
    values = []
    for _ in range(count):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def cosine_warmup_factor(base, warmup, total, min_lr):
    # The formula documented for lathe::CosineWarmupLR, as a multiplier of base for LambdaLR.
    def factor(step):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if step >= total:
            return min_lr / base
        progress = (step - warmup) / (total - warmup)
        return (min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / base
    return factor


def schedules_fixture():
    step_lr = dict(base=0.1, step_size=3, gamma=0.5)
    step_lr["values"] = schedule_values(
        step_lr["base"],
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_lr["step_size"], step_lr["gamma"]), 12)
    cosine = []
    for base, warmup, total, min_lr in [(0.1, 3, 10, 0.01), (0.5, 0, 6, 0.0), (0.2, 4, 4, 0.02)]:
        case = dict(base=base, warmup_steps=warmup, total_steps=total, min_lr=min_lr)
        factor = cosine_warmup_factor(base, warmup, total, min_lr)
        case["values"] = schedule_values(
            base, lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor), total + 3)
        cosine.append(case)
    return {"torch_version": torch.__version__, "step_lr": step_lr, "cosine_warmup": cosine}


def clip_fixture():
    params = make_params()
    loss_of(params).backward()
    cases = []
    for scale, max_norm in [(3.0, 0.5), (1.0, 10.0)]:
        grads = [params[n].grad.detach().clone() * scale for n in PARAM_NAMES]
        before = {n: flat(g) for n, g in zip(PARAM_NAMES, grads)}
        tensors = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for t, g in zip(tensors, grads):
            t.grad = g
        norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
        cases.append({"max_norm": max_norm, "grads": before, "norm": float(norm),
                      "clipped": {n: flat(t.grad) for n, t in zip(PARAM_NAMES, tensors)}})
    return {"torch_version": torch.__version__, "param_names": PARAM_NAMES,
            "shapes": {n: list(params[n].shape) for n in PARAM_NAMES}, "cases": cases}


def write(name, data):
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")


def main():
    torch.set_default_dtype(torch.float64)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (kind, options) in CONFIGS.items():
        write(name, optimizer_fixture(kind, options))
    write("schedules", schedules_fixture())
    write("clip_grad_norm", clip_fixture())


if __name__ == "__main__":
    main()
