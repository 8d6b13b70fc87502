"""The training step against this machine's matrix-product limit, per precision, in one run.

Records the matrix products one `Engine.train_step()` executes (aten mm / addmm / bmm / ... with their
shapes, strides and dtypes), times each in isolation to get the "matmul-only" step time (the limit), then
times the real step in interleaved rounds and prints steps/s, the fraction of the limit and bf16/fp32.
The machine may be shared and noisy: each round times blocks of steps with a sample of every product
after each block, so a step and its limit see the same load; the summary is the median over rounds. Usage:

    python benchmarks/bench_train.py [--profile default] [--rounds 5] [--steps 20]
        [--precisions fp32,bf16[,fp64]] [--threads N] [--device auto] [--plain]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from grokmon.config import Config, load_config
from grokmon.engine import Engine
from grokmon.errors import GrokmonError

aten = torch.ops.aten

# -- the FLOP recorder -------------------------------------------------------------------------------

# 2*m*n*k per product (the beta*bias add of addmm and friends is not counted), from the positional tensor
# operands' shapes. einsum, matmul and linear are composite: they reach the dispatcher as these.
_FLOPS: dict[Any, Callable[[list[torch.Size]], int]] = {
    aten.mm: lambda s: 2 * s[0][0] * s[0][1] * s[1][1],  # [m, k] @ [k, n]
    aten.addmm: lambda s: 2 * s[1][0] * s[1][1] * s[2][1],  # bias + [m, k] @ [k, n]
    aten._addmm_activation: lambda s: 2 * s[1][0] * s[1][1] * s[2][1],
    aten.bmm: lambda s: 2 * s[0][0] * s[0][1] * s[0][2] * s[1][2],  # [b, m, k] @ [b, k, n]
    aten.baddbmm: lambda s: 2 * s[1][0] * s[1][1] * s[1][2] * s[2][2],
    aten.addbmm: lambda s: 2 * s[1][0] * s[1][1] * s[1][2] * s[2][2],
    aten.mv: lambda s: 2 * s[0][0] * s[0][1],  # [m, n] @ [n]
    aten.addmv: lambda s: 2 * s[1][0] * s[1][1],
    aten.dot: lambda s: 2 * s[0][0],
    aten.vdot: lambda s: 2 * s[0][0],
}


@dataclass(frozen=True)
class TensorSpec:
    """What a replay needs of one operand: its geometry and dtype, not its values."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: str

    @staticmethod
    def of(t: torch.Tensor) -> "TensorSpec":
        return TensorSpec(tuple(t.shape), tuple(t.stride()), t.dtype, str(t.device))

    def layout(self) -> str:
        """'N' row-major contiguous, 'T' a transposed contiguous matrix, 'S' anything else (strided)."""
        if len(self.shape) < 2:
            return "N" if self.stride in ((1,), ()) or self.shape[0] <= 1 else "S"
        m, n = self.shape[-2:]
        if self.stride[-1] == 1 and self.stride[-2] == n:
            return "N"
        if self.stride[-2] == 1 and self.stride[-1] == m:
            return "T"
        return "S"

    def materialize(self, gen: torch.Generator) -> torch.Tensor:
        """A tensor with these shape, strides and dtype over random values (overlapping strides allowed)."""
        span = 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride)) if all(self.shape) else 0
        base = torch.randn(span, generator=gen, dtype=torch.float64).to(self.dtype).to(self.device)
        return base.as_strided(self.shape, self.stride)


@dataclass(frozen=True)
class Product:
    """One executed matrix product: the op overload, its arguments with tensors as TensorSpecs, its FLOPs."""

    func: Any  # torch._ops.OpOverload
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    flops: int

    @property
    def operands(self) -> list[TensorSpec]:
        return [a for a in self.args if isinstance(a, TensorSpec)]

    @property
    def dtype(self) -> torch.dtype:
        return self.operands[-1].dtype

    def describe(self) -> str:
        """'mm [3830,128]N @ [128,512]N' (a bias operand of addmm and friends is left out)."""
        ops = self.operands[-2:] if len(self.operands) >= 2 else self.operands
        shapes = " @ ".join("[" + ",".join(map(str, o.shape)) + "]" + o.layout() for o in ops)
        return f"{self.func.overloadpacket.__name__} {shapes}"

    def replay(self, gen: torch.Generator) -> Callable[[], Any]:
        """A no-argument callable that runs this product on fresh random operands of the recorded geometry."""
        args = tree_map(lambda a: a.materialize(gen) if isinstance(a, TensorSpec) else a, self.args)
        kwargs = {k: v.materialize(gen) if isinstance(v, TensorSpec) else v for k, v in self.kwargs}
        func = self.func
        return lambda: func(*args, **kwargs)


class MatmulRecorder(TorchDispatchMode):
    """Records every aten matrix product executed inside it, forward and backward (the autograd engine's
    calls pass through the dispatcher too), after autocast has picked the dtype. `products` in call order."""

    def __init__(self) -> None:
        super().__init__()
        self.products: list[Product] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        count = _FLOPS.get(func.overloadpacket)
        if count is not None:
            spec = tree_map(lambda a: TensorSpec.of(a) if isinstance(a, torch.Tensor) else a, tuple(args))
            shapes = [torch.Size(a.shape) for a in tree_flatten(spec)[0] if isinstance(a, TensorSpec)]
            kw = tuple(sorted((k, TensorSpec.of(v) if isinstance(v, torch.Tensor) else v)
                              for k, v in kwargs.items()))
            self.products.append(Product(func, spec, kw, count(shapes)))
        return func(*args, **kwargs)

    @property
    def flops(self) -> int:
        return sum(p.flops for p in self.products)


# -- timing ------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # a host sync: only around timed regions


def calibrate(fn: Callable[[], Any], device: torch.device, min_s: float = 2e-3) -> int:
    """Warm `fn` up and return how many calls make one timed sample of at least `min_s` seconds."""
    for _ in range(2):
        fn()
    n = 1
    while True:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(device)
        if time.perf_counter() - t0 >= min_s or n >= 1 << 16:
            return n
        n *= 2


def seconds_per_call(fn: Callable[[], Any], n: int, device: torch.device) -> float:
    """One timed sample: `n` back-to-back calls, per call."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / n


class Limit:
    """The matmul-only time of a step: each distinct recorded product timed alone, times its calls per step.

    Sampled between blocks of real steps (see `timed_round`), so that both see the same load on a shared
    machine; a round's limit sums the products' median sample over that round.
    """

    def __init__(self, products: list[Product], device: torch.device, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.counts = Counter(products)  # Product is hashable: equal geometry and arguments count together
        self.device = device
        self.calls = {p: p.replay(gen) for p in self.counts}
        self.n = {p: calibrate(fn, device) for p, fn in self.calls.items()}
        self._samples: dict[Product, list[float]] = {p: [] for p in self.counts}  # this round's, s per call
        self.times: dict[Product, list[float]] = {p: [] for p in self.counts}  # each round's median

    @property
    def flops(self) -> int:
        return sum(p.flops * c for p, c in self.counts.items())

    def sample(self) -> None:
        for p, fn in self.calls.items():
            self._samples[p].append(seconds_per_call(fn, self.n[p], self.device))

    def end_round(self) -> float:
        """This round's matmul-only step time in seconds (and start the next round)."""
        total = 0.0
        for p, samples in self._samples.items():
            self.times[p].append(statistics.median(samples))
            total += self.counts[p] * self.times[p][-1]
            samples.clear()
        return total

    def median_time(self, p: Product) -> float:
        return statistics.median(self.times[p])


def timed_round(engine: Engine, limit: Limit, steps: int, blocks: int = 5) -> tuple[float, float]:
    """`steps` real steps in up to `blocks` timed blocks, a sample of every product after each block.
    Returns (steps/s, limit steps/s) for the round."""
    sizes = [steps // blocks + (i < steps % blocks) for i in range(blocks)]
    elapsed = 0.0
    for size in (s for s in sizes if s):
        _sync(engine.device)
        t0 = time.perf_counter()
        for _ in range(size):
            engine.train_step()
        _sync(engine.device)  # one sync per block, not per step: a GPU keeps its queue full inside a block
        elapsed += time.perf_counter() - t0
        limit.sample()
    return steps / elapsed, 1.0 / limit.end_round()


# -- the machine ---------------------------------------------------------------------------------------


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and its flags (empty where /proc/cpuinfo is not there: not Linux)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags |= set(value.split())
    return name, flags


def bf16_capability(device: torch.device, flags: set[str]) -> tuple[bool | None, str]:
    """Whether this device multiplies bf16 natively: (True/False/None for unknown, a phrase for the header)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "native (CUDA)" if ok else "none (this GPU has no bf16)"
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if native:
        return True, "native (" + ", ".join(native) + ")"
    if not flags:
        return None, "unknown (no /proc/cpuinfo)"
    return False, "none"


# -- engines per precision ---------------------------------------------------------------------------


def make_engines(base: Config, precisions: list[str], plain: bool) -> dict[str, Engine]:
    """One warmed-up Engine per variant. Without train.precision in this grokmon, fp32 only."""
    base = base.replace("metrics", metrics_every=0)  # the probe is evaluation-only: not built, not timed
    cfgs: dict[str, Config] = {}
    for prec in precisions:
        try:
            cfgs[prec] = base.replace("train", precision=prec)
        except TypeError:  # TrainConfig has no such field yet
            print("train.precision not available in this grokmon: benching fp32 (its default) only")
            cfgs = {"fp32": base}
            break
        except GrokmonError as e:
            print(f"skipping {prec}: {e}")
    if plain and "fp32" in cfgs:
        cfgs["fp32 plain"] = cfgs["fp32"].replace("train", fast=False)
    engines = {}
    for name, cfg in cfgs.items():
        engine = Engine(cfg)
        for _ in range(3):  # warm-up: allocator, optimiser state, autocast's weight cache
            engine.train_step()
        engines[name] = engine
    return engines


EXPECTED_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}


def record(engine: Engine) -> list[Product]:
    """The matrix products of one real training step of `engine` (it advances the run by one step)."""
    with MatmulRecorder() as rec:
        engine.train_step()
    _sync(engine.device)
    return rec.products


def check_dtype(name: str, products: list[Product]) -> None:
    """Say so when most of a precision's FLOPs did not run in its dtype (an engine that ignores the key)."""
    expected = EXPECTED_DTYPE.get(name)
    total = sum(p.flops for p in products)
    done = sum(p.flops for p in products if p.dtype == expected)
    if expected is not None and total and done < total / 2:
        seen = sorted({str(p.dtype).removeprefix("torch.") for p in products})
        print(f"warning: {name}: only {100 * done / total:.0f} % of the step's FLOPs ran in "
              f"{str(expected).removeprefix('torch.')} (seen: {', '.join(seen)}); "
              "does this engine honour train.precision?")


# -- output --------------------------------------------------------------------------------------------


def print_products(name: str, limit: Limit) -> None:
    total = limit.flops
    n_calls = sum(limit.counts.values())
    print(f"\n{name}: {total / 1e9:.3f} GFLOP per step in {n_calls} matrix products ({len(limit.counts)} distinct)")
    print(f"  {'share':>6} {'GFLOP':>7} {'calls':>5}  {'dtype':<9} {'ms/call':>8} {'GFLOP/s':>8}  product")
    for p, c in sorted(limit.counts.items(), key=lambda pc: -pc[0].flops * pc[1]):
        t = limit.median_time(p)
        print(f"  {100 * p.flops * c / max(total, 1):5.1f}% {p.flops * c / 1e9:7.3f} {c:5d}  "
              f"{str(p.dtype).removeprefix('torch.'):<9} {1e3 * t:8.3f} {p.flops / t / 1e9:8.1f}  {p.describe()}")
    print("  (N row-major, T transposed, S strided operand, as recorded and as replayed)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", help="quick | default | fsd")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="steps per precision per round")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16, fp64")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--plain", action="store_true", help="also time fp32 with the plain all-positions forward")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]

    base = load_config(args.profile).replace("train", device=args.device)
    engines = make_engines(base, precisions, args.plain)
    if not engines:
        raise SystemExit("no precision left to bench (expected --precisions from fp32, bf16, fp64)")
    first = next(iter(engines.values()))
    device = first.device
    cpu_name, flags = cpu_info()
    bf16_native, bf16_phrase = bf16_capability(device, flags)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name
    n_train, bs = len(first.train_idx), first.cfg.train.batch_size
    batch = "full batch" if not bs or bs >= n_train else f"batch {bs}"
    print(f"profile {args.profile}, device {device} ({where}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {n_train} train pairs ({batch}), bf16: {bf16_phrase}")

    limits = {}
    for name, engine in engines.items():
        products = record(engine)
        check_dtype(name, products)
        limits[name] = Limit(products, device)
    rates: dict[str, list[float]] = {name: [] for name in engines}
    bounds: dict[str, list[float]] = {name: [] for name in engines}  # limit steps/s per round
    for r in range(args.rounds):
        cells = []
        for name, engine in engines.items():
            rate, bound = timed_round(engine, limits[name], args.steps)
            rates[name].append(rate)
            bounds[name].append(bound)
            cells.append(f"{name} {rates[name][-1]:6.1f} (limit {bounds[name][-1]:6.1f}, "
                         f"{100 * rates[name][-1] / bounds[name][-1]:3.0f} %)")
        print(f"round {r + 1}: steps/s  " + "  ".join(cells))

    for name, limit in limits.items():
        print_products(name, limit)

    print(f"\nmedians over {args.rounds} rounds of {args.steps} steps:")
    print(f"  {'':<11}{'steps/s':>8} {'limit':>7} {'of limit':>9} {'GFLOP/s':>8} {'limit GFLOP/s':>14} "
          f"{'ms/step':>8} {'not matmul':>11}")
    for name in engines:
        flops = limits[name].flops
        rate, bound = statistics.median(rates[name]), statistics.median(bounds[name])
        frac = statistics.median(r / b for r, b in zip(rates[name], bounds[name]))
        print(f"  {name:<11}{rate:8.1f} {bound:7.1f} {100 * frac:8.0f}% {rate * flops / 1e9:8.1f} "
              f"{bound * flops / 1e9:14.1f} {1e3 / rate:8.1f} {1e3 / rate - 1e3 / bound:8.1f} ms")

    if "fp32" in engines:
        frac = statistics.median(r / b for r, b in zip(rates["fp32"], bounds["fp32"]))
        print(f"target fp32 >= 80 % of its limit: {100 * frac:.0f} % -> {'met' if frac >= 0.8 else 'MISSED'}")
    if "fp32" in engines and "bf16" in engines:
        ratio = statistics.median(b / f for b, f in zip(rates["bf16"], rates["fp32"]))
        bound_ratio = statistics.median(b / f for b, f in zip(bounds["bf16"], bounds["fp32"]))
        print(f"bf16/fp32 steps/s: {ratio:.2f}x (their matmul limits: {bound_ratio:.2f}x)")
        if bf16_native is False:
            print("this CPU has no bf16 instructions: bf16 runs emulated, the 1.4x target does not apply")
        else:
            print(f"target bf16 >= 1.4x fp32 on a CPU that has bf16 instructions: {ratio:.2f}x -> "
                  f"{'met' if ratio >= 1.4 else 'MISSED'}")


if __name__ == "__main__":
    main()
