"""Steps/s of the fast forward against the plain all-positions forward, side by side in one run.

The machine may be shared and noisy, so the variants run in interleaved rounds and the script prints
each round's ratio and their median. Usage:

    python benchmarks/bench_train.py [--profile default] [--rounds 5] [--steps 30] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from grokmon.config import load_config
from grokmon.engine import Engine


def steps_per_s(engine: Engine, steps: int) -> float:
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        engine.train_step()
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30, help="steps per variant per round")
    ap.add_argument("--compile", action="store_true", help="also time the fast path under torch.compile")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    base = load_config(args.profile)
    variants = {"plain": dict(fast=False), "fast": dict(fast=True)}
    if args.compile:
        variants["fast+compile"] = dict(fast=True, compile=True)
    engines = {}
    for name, kw in variants.items():
        engine = Engine(base.replace("train", device=args.device, **kw))
        for _ in range(3):  # warm-up (and compilation)
            engine.train_step()
        engines[name] = engine
    print(f"profile {args.profile} on {engines['plain'].device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {len(engines['plain'].train_idx)} train pairs, full batch")

    rates: dict[str, list[float]] = {name: [] for name in engines}
    for r in range(args.rounds):
        for name, engine in engines.items():
            rates[name].append(steps_per_s(engine, args.steps))
        line = "  ".join(f"{n} {rates[n][-1]:6.1f}" for n in engines)
        print(f"round {r + 1}: steps/s  {line}  ratio fast/plain {rates['fast'][-1] / rates['plain'][-1]:.2f}")
    for name in engines:
        if name == "plain":
            continue
        ratios = [f / p for f, p in zip(rates[name], rates["plain"])]
        print(f"median ratio {name}/plain: {statistics.median(ratios):.2f}x "
              f"({statistics.median(rates[name]):.1f} vs {statistics.median(rates['plain']):.1f} steps/s)")


if __name__ == "__main__":
    main()
