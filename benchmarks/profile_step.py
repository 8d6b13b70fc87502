"""Where a training step's time goes: torch.profiler over N steps, by kind of operator, in ms of CPU per step.

    python benchmarks/profile_step.py [--profile default] [--steps 20] [--threads 1] [--precision fp32] [--ops]

Kinds: matrix products (mm, addmm, bmm), elementwise passes, reductions, softmax and its backward, gathers
and their backward (embedding, index_select), the optimiser, and the rest. --ops adds the top operators with
their input shapes. docs/performance.md holds the tables this printed before and after the kernel work.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from grokmon.config import load_config
from grokmon.engine import Engine

KINDS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul"),
    "softmax": ("aten::_softmax", "aten::_log_softmax", "aten::_softmax_backward_data",
                "aten::_log_softmax_backward_data", "aten::nll_loss_forward", "aten::nll_loss_backward"),
    "gathers": ("aten::index_select", "aten::embedding_dense_backward", "aten::index_add_", "aten::embedding",
                "aten::index", "aten::index_put_"),
    "reductions": ("aten::sum", "aten::mean", "aten::amax"),
    "optimiser": ("aten::_fused_adamw_", "aten::_foreach_", "Optimizer.", "aten::zero_"),
    "elementwise": ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::clamp_min", "aten::relu",
                    "aten::threshold_backward", "aten::copy_", "aten::fill_", "aten::where", "aten::exp",
                    "aten::masked_fill", "aten::_to_copy", "aten::cat", "aten::stack"),
}


def kind_of(name: str) -> str:
    for kind, prefixes in KINDS.items():
        if any(name == p or name.startswith(p) for p in prefixes):
            return kind
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp64"))
    ap.add_argument("--ops", action="store_true", help="also the top operators by self time, with shapes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(args.profile).replace("train", device="cpu")
    if args.precision != "fp32":
        cfg = cfg.replace("train", precision=args.precision)
    engine = Engine(cfg)
    for _ in range(5):
        engine.train_step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.ops) as prof:
        for _ in range(args.steps):
            engine.train_step()
    events = prof.key_averages(group_by_input_shape=args.ops)
    per_kind: dict[str, float] = defaultdict(float)
    for ev in events:
        per_kind[kind_of(ev.key)] += ev.self_cpu_time_total / 1000 / args.steps  # us -> ms per step
    total = sum(per_kind.values())
    print(f"profile {args.profile}, precision {args.precision}, {args.threads} thread(s), torch {torch.__version__}: "
          f"{total:.1f} ms of CPU per step under the profiler")
    print(f"{'kind':<18} {'ms/step':>8} {'share':>6}")
    for kind, ms in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"{kind:<18} {ms:8.1f} {100 * ms / total:5.1f}%")
    if args.ops:
        print()
        rows = sorted(events, key=lambda ev: -ev.self_cpu_time_total)[:20]
        for ev in rows:
            ms = ev.self_cpu_time_total / 1000 / args.steps
            print(f"{ms:7.2f} ms  {ev.count // args.steps:>3}x  {ev.key:<32} {ev.input_shapes}")


if __name__ == "__main__":
    main()
