"""CPU time per training step of two (or more) versions of the training kernel, side by side in one process.

Each version is a copy of grokmon/fast.py (e.g. `git show 233099a:grokmon/fast.py > /tmp/fast_old.py`);
each trains its own engine of the same profile, in interleaved rounds, and the script prints the median
CPU time per step and the median per-round ratio to the first version. CPU time (time.process_time) at
one thread is steadier than wall time on a shared machine. Usage:

    python benchmarks/bench_kernel_ab.py OLD_FAST.py grokmon/fast.py [--profile default] [--rounds 9]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch

from grokmon.config import load_config
from grokmon.engine import Engine


def load_kernel(path: Path, index: int) -> object:
    spec = importlib.util.spec_from_file_location(f"fast_version_{index}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kernels", nargs="+", type=Path, help="copies of grokmon/fast.py; the first is the baseline")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=10, help="steps per version per round")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(args.profile).replace("train", device="cpu")
    engines = []
    for i, path in enumerate(args.kernels):
        engine = Engine(cfg)
        engine._train_forward = load_kernel(path, i).train_forward(engine.model)  # type: ignore[attr-defined]
        for _ in range(3):
            engine.train_step()
        engines.append(engine)
    print(f"profile {args.profile}, {args.threads} thread(s), torch {torch.__version__}, "
          f"{args.rounds} rounds of {args.steps} steps")
    per_step: list[list[float]] = [[] for _ in engines]
    for _ in range(args.rounds):
        for i, engine in enumerate(engines):
            t0 = time.process_time()
            for _ in range(args.steps):
                engine.train_step()
            per_step[i].append((time.process_time() - t0) / args.steps)
    for i, path in enumerate(args.kernels):
        ratio = statistics.median(b / x for b, x in zip(per_step[0], per_step[i]))
        print(f"{path}: {1000 * statistics.median(per_step[i]):.1f} ms CPU per step; "
              f"speed against the first: {ratio:.3f}x")


if __name__ == "__main__":
    main()
