"""Cost of the Fourier metrics: one full probe (all components, 1000 permutations) and its overhead on
training at the profile's cadence, measured side by side in one run.

Each round times `--steps` training steps, an evaluation without the probe, and the probe on that
evaluation's logits and block outputs (it reuses the evaluation's forward), so noise from a shared
machine hits all three alike. Overhead = probe cost per cadence window / training time of
that window (eval_every * metrics_every steps). Usage:

    python benchmarks/bench_metrics.py [--profile default] [--rounds 5] [--steps 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from grokmon.config import load_config
from grokmon.engine import Engine
from grokmon.metrics.fsd import fsd


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()

    cfg = load_config(args.profile)
    engine = Engine(cfg)  # no sinks: nothing is written
    plain = Engine(cfg.replace("metrics", metrics_every=0))
    plain.model.load_state_dict(engine.model.state_dict())
    for _ in range(3):
        engine.train_step()
    window = cfg.train.eval_every * cfg.metrics.metrics_every
    print(f"profile {args.profile}: p={cfg.task.p}, {cfg.model.n_layers} layer(s), n_perm {cfg.metrics.n_perm}, "
          f"probe every {window} steps; torch {torch.__version__}, {torch.get_num_threads()} threads")

    step_s, eval_s, probe_s = [], [], []
    for r in range(args.rounds):
        step_s.append(timed(lambda: [engine.train_step() for _ in range(args.steps)]) / args.steps)
        plain.model.load_state_dict(engine.model.state_dict())
        plain.step = engine.step
        eval_s.append(timed(plain.evaluate))
        cache: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            logits = engine.model(engine.tokens, cache)  # the evaluation's forward, which the probe reuses
        params = dict(engine.model.named_parameters())
        probe_s.append(timed(lambda: engine.probe.measure(params, logits, cache, engine.step)))
        print(f"round {r + 1}: step {step_s[-1] * 1e3:.1f} ms, evaluation {eval_s[-1] * 1e3:.0f} ms, "
              f"probe {probe_s[-1] * 1e3:.0f} ms, overhead {probe_s[-1] / (window * step_s[-1]):.2%}")

    e = np.random.default_rng(0).random((5, (cfg.task.p - 1) // 2))
    null_s = timed(lambda: [fsd(e[:-1], e[-1], n_perm=cfg.metrics.n_perm, seed=i) for i in range(20)]) / 20
    s, ev, pr = (statistics.median(x) for x in (step_s, eval_s, probe_s))
    print(f"median: training step {s * 1e3:.1f} ms; probe (all components, {cfg.metrics.n_perm} permutations) "
          f"{pr * 1e3:.0f} ms, added to the {ev * 1e3:.0f} ms evaluation; FSD null alone {null_s * 1e3:.2f} ms")
    print(f"metrics overhead at the default cadence: {pr / (window * s):.2%} of training time "
          f"(evaluation itself, every {cfg.train.eval_every} steps: {ev / (cfg.train.eval_every * s):.2%})")


if __name__ == "__main__":
    main()
