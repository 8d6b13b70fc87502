"""Should `grokmon sweep --backend local` batch several models into one process? Measures, side by side in
interleaved rounds, the training throughput (model-steps/s) of B models stepped one after another against
the same B models stacked and stepped at once (torch.func.vmap over stacked parameters; AdamW is
elementwise, so one AdamW over the stacked tensors is B independent AdamWs). Usage:

    python benchmarks/bench_sweep.py [--profile quick] [--models 4] [--rounds 5] [--steps 10] [--threads 1]

Run it with --threads equal to what each sweep process would get (cores / --jobs) to compare against
local processes, whose throughput is at best --jobs times one process's.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from grokmon.config import load_config
from grokmon.data import make_dataset
from grokmon.engine import make_optimizer, resolve_device
from grokmon.model import Transformer, loss_fn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="steps per variant per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(args.profile)
    device = resolve_device(args.device)
    data = make_dataset(cfg.task)
    tokens = data.tokens[data.train_idx].to(device)  # [n_train, 3]
    labels = data.labels[data.train_idx].to(device)  # [n_train]
    models = []
    for seed in range(args.models):
        m = Transformer(cfg.model.__class__(**{**cfg.model.__dict__, "seed": seed}), cfg.task.p).to(device)
        models.append(m)
    opts = [make_optimizer(m, cfg) for m in models]

    params, buffers = stack_module_state([copy.deepcopy(m) for m in models])  # [B, ...] leaves
    stacked = {k: torch.nn.Parameter(v.detach().clone()) for k, v in params.items()}
    stacked_opt = torch.optim.AdamW(stacked.values(), lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                                    weight_decay=cfg.optim.weight_decay)
    base = copy.deepcopy(models[0]).to("meta")

    def one_model_loss(p: dict, b: dict) -> torch.Tensor:
        return loss_fn(functional_call(base, (p, b), (tokens,)), labels)

    batched_loss = vmap(one_model_loss, in_dims=(0, 0))

    def sequential(steps: int) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            for m, opt in zip(models, opts):
                loss = loss_fn(m(tokens), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        sync()
        return steps * len(models) / (time.perf_counter() - t0)

    def batched(steps: int) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = batched_loss(stacked, buffers).sum()  # models are independent: sum keeps their gradients apart
            stacked_opt.zero_grad(set_to_none=True)
            loss.backward()
            stacked_opt.step()
        sync()
        return steps * len(models) / (time.perf_counter() - t0)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    sequential(2)
    batched(2)  # warm-up
    ratios = []
    print(f"{args.profile}: {args.models} models, {args.threads} thread(s), device {device}")
    for r in range(args.rounds):
        s, b = sequential(args.steps), batched(args.steps)
        ratios.append(b / s)
        print(f"round {r}: sequential {s:.1f} model-steps/s, batched {b:.1f}, ratio {b / s:.3f}")
    print(f"median batched/sequential ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
