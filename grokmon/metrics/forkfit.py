"""The weight-decay fork analysis (docs/metrics.md): branch stability, the fit dt = C / lambda, and the spread
of the memorisation norm. Pure functions of plain numbers; knows nothing about run directories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

STABLE_ACC = 0.99  # a branch whose train acc falls below this after the fork is unstable ...
SPIKE_FACTOR = 10.0  # ... or whose train loss rises above this multiple of its pre-fork value
DIP_STEPS = 100  # ours: a dip or a spike counts when it lasts this many steps (docs/metrics.md)
PRE_FORK_STEPS = 1000  # ours: the pre-fork value is the highest train loss over this window before the fork


@dataclass(frozen=True)
class Stability:
    stable: bool
    min_train_acc: float | None  # over the evaluations after the fork
    max_loss_ratio: float | None  # max train loss after the fork / the pre-fork value
    reason: str = ""
    dip_steps: int = 0  # the longest run of evaluations with train acc < 0.99, first to last step
    spike_steps: int = 0  # the same for train loss > 10x the pre-fork value


def spec_stability(fork_train_loss: float, train_acc: Sequence[float], train_loss: Sequence[float]) -> Stability:
    """The single-evaluation rule (the rule as first written), on the evaluations after the fork: any train acc below 0.99, or any
    train loss above 10x the train loss at the fork."""
    steps = list(range(len(train_acc)))
    return branch_stability(fork_train_loss, steps, train_acc, train_loss, min_steps=0)


def branch_stability(pre_fork_loss: float, steps: Sequence[int], train_acc: Sequence[float],
                     train_loss: Sequence[float], *, min_steps: int = DIP_STEPS) -> Stability:
    """Ours (the default): unstable if train acc stays below 0.99, or the train loss stays above 10x
    `pre_fork_loss` (the highest train loss of the PRE_FORK_STEPS before the fork), over consecutive
    evaluations spanning at least `min_steps` steps. Adam's one-evaluation spikes, which the unchanged
    lambda0 branch has too, do not count; a collapse does. min_steps=0: any single evaluation counts."""
    if not train_acc:
        return Stability(False, None, None, "no evaluation after the fork")
    min_acc = min(train_acc)
    if not all(math.isfinite(x) for x in train_loss):
        return Stability(False, min_acc, None, "non-finite train loss")
    ratio = max(train_loss) / pre_fork_loss if pre_fork_loss > 0 else math.inf
    dip = _longest(steps, [a < STABLE_ACC for a in train_acc])
    spike = _longest(steps, [x > SPIKE_FACTOR * pre_fork_loss for x in train_loss])
    span = " for {} steps" if min_steps else ""
    if dip is not None and dip >= min_steps:
        return Stability(False, min_acc, ratio, f"train acc below {STABLE_ACC}{span.format(dip)} "
                         f"(lowest {min_acc:.3f})", dip, spike or 0)
    if spike is not None and spike >= min_steps:
        return Stability(False, min_acc, ratio, f"train loss above {SPIKE_FACTOR:g}x its pre-fork value"
                         f"{span.format(spike)} (max {ratio:.3g}x)", dip or 0, spike)
    return Stability(True, min_acc, ratio, "", dip or 0, spike or 0)


def _longest(steps: Sequence[int], flags: Sequence[bool]) -> int | None:
    """The longest span (last step - first step) of consecutive flagged evaluations; None if none is."""
    best, start = None, None
    for step, flag in zip(steps, flags):
        if flag:
            start = step if start is None else start
            best = max(best or 0, step - start)
        else:
            start = None
    return best


@dataclass(frozen=True)
class InverseFit:
    """dt = C / lambda by least squares through the origin on x = 1 / lambda."""

    c: float
    r2: float | None  # 1 - SS_res / SS_tot; None when SS_tot is 0 (every dt equal) or n < 2
    monotone: bool  # dt falls strictly as lambda rises
    n: int


def fit_inverse(lambdas: Sequence[float], dts: Sequence[float]) -> InverseFit:
    """Fit dt = C / lambda through the origin. Needs at least one point with lambda > 0."""
    if len(lambdas) != len(dts) or not lambdas:
        raise ValueError("expected equal, non-empty lambdas and dts")
    if any(not lam > 0 for lam in lambdas):
        raise ValueError("expected every lambda > 0")
    xs = [1.0 / lam for lam in lambdas]
    c = sum(x * y for x, y in zip(xs, dts)) / sum(x * x for x in xs)
    mean = sum(dts) / len(dts)
    ss_tot = sum((y - mean) ** 2 for y in dts)
    ss_res = sum((y - c * x) ** 2 for x, y in zip(xs, dts))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 and len(dts) >= 2 else None
    ordered = [dt for _, dt in sorted(zip(lambdas, dts))]
    monotone = len(ordered) >= 2 and all(a > b for a, b in zip(ordered, ordered[1:]))
    return InverseFit(c=c, r2=r2, monotone=monotone, n=len(dts))


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Population standard deviation over the mean; None for fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    if mean == 0:
        return None
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return math.sqrt(var) / abs(mean)
