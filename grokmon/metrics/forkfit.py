"""The weight-decay fork analysis (docs/metrics.md): branch stability, the three fits of dt against lambda
(1/lambda through the origin, a free exponent, an intercept), seed averaging and the Student t quantile.
Pure functions of plain numbers; knows nothing about run directories or fork.json."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from grokmon.metrics.grokking import MEMORISED

STABLE_ACC = MEMORISED  # a branch whose train acc stays below this ...
SPIKE_FACTOR = 10.0  # ... or whose train loss stays above this multiple of the pre-fork level ...
DIP_STEPS = 100  # ... for this many steps or more (last flagged step - first) is unstable
CI_LEVEL = 0.95  # the exponent's confidence interval


# ---------------------------------------------------------------------------------------------
# stability


@dataclass(frozen=True)
class Stability:
    """One branch's stability verdict (docs/metrics.md) and the numbers it was judged on."""

    stable: bool
    reason: str  # why unstable; for a stable branch, what could not be judged ("" when everything was)
    window: tuple[int, int] | None  # judged: window[0] < step <= window[1]; None: no evaluation after the fork
    window_end: str  # "t_grok" (the branch grokked) or "last evaluation" (it did not)
    t_mem: int | None  # the parent's first evaluation with train acc >= 0.99, at or before the fork
    pre_fork_level: float | None  # L_pre: the median train loss of the evaluations from t_mem to the fork
    min_train_acc: float | None  # over the window
    max_loss_ratio: float | None  # the highest train loss in the window / L_pre
    dip_steps: int = 0  # the longest run of window evaluations with train acc < 0.99, last step - first
    spike_steps: int = 0  # the same for train loss > 10 x L_pre


def pre_fork_level(steps: Sequence[int], train_acc: Sequence[float], train_loss: Sequence[float],
                   fork_step: int) -> tuple[int | None, float | None]:
    """(t_mem, L_pre) from the evaluations at or before the fork (the parent's): t_mem is the first with train
    acc >= 0.99, L_pre the median finite train loss from t_mem to the fork step, both included. The median,
    not the max: the max is set by one evaluation (the first after t_mem, where the loss is still falling, or
    one of Adam's spikes). (None, None) when the parent had not memorised by the fork."""
    before = [(s, a, x) for s, a, x in zip(steps, train_acc, train_loss) if s <= fork_step]
    t_mem = next((s for s, a, _ in before if a >= STABLE_ACC), None)
    if t_mem is None:
        return None, None
    losses = [x for s, _, x in before if s >= t_mem and _finite(x)]
    return t_mem, (statistics.median(losses) if losses else None)


def branch_stability(steps: Sequence[int], train_acc: Sequence[float], train_loss: Sequence[float], *,
                     fork_step: int, t_grok: int | None, min_steps: int = DIP_STEPS) -> Stability:
    """Judge a branch from all its evaluations in step order (the parent's up to the fork, then its own).
    Window: after the fork up to the branch's t_grok, or to its last evaluation when it never grokked.
    Unstable when, inside the window, train acc stays below 0.99 or train loss stays above 10 x L_pre over
    consecutive evaluations spanning `min_steps` steps or more; a non-finite (or null) train loss is unstable. A
    dip or spike after t_grok, or one evaluation long, does not count."""
    t_mem, level = pre_fork_level(steps, train_acc, train_loss, fork_step)
    after = [(s, a, x) for s, a, x in zip(steps, train_acc, train_loss) if s > fork_step]
    end_rule = "t_grok" if t_grok is not None else "last evaluation"
    during = "before t_grok" if t_grok is not None else "after the fork (no t_grok)"
    end = t_grok if t_grok is not None else (after[-1][0] if after else None)
    inside = [e for e in after if end is not None and e[0] <= end]
    if not inside:
        return Stability(False, "no evaluation after the fork", None, end_rule, t_mem, level, None, None)
    w_steps, w_acc, w_loss = (list(c) for c in zip(*inside))
    window = (fork_step, int(end))
    min_acc = min(w_acc)
    if not all(_finite(x) for x in w_loss):
        return Stability(False, "non-finite train loss", window, end_rule, t_mem, level, min_acc, None)
    dip = _longest(w_steps, [a < STABLE_ACC for a in w_acc])
    common = dict(window=window, window_end=end_rule, t_mem=t_mem, pre_fork_level=level, min_train_acc=min_acc)
    ratio = spike = None
    note = ""
    if level is None:
        note = "loss test not applied: no pre-fork level (the parent had not memorised by the fork)"
    elif not level > 0:
        note = "loss test not applied: the pre-fork level is 0"
    else:
        ratio = max(w_loss) / level
        spike = _longest(w_steps, [x > SPIKE_FACTOR * level for x in w_loss])
    common.update(max_loss_ratio=ratio, dip_steps=dip or 0, spike_steps=spike or 0)
    if dip is not None and dip >= min_steps:
        return Stability(False, f"train acc below {STABLE_ACC} for {dip} steps {during} "
                         f"(lowest {min_acc:.3f})", **common)
    if spike is not None and spike >= min_steps:
        return Stability(False, f"train loss above {SPIKE_FACTOR:g}x its pre-fork level for {spike} steps "
                         f"{during} (max {ratio:.3g}x)", **common)
    return Stability(True, note, **common)


def _finite(x: Any) -> bool:
    """A finite number; metrics.jsonl stores NaN and inf as null, so None (any non-number) is not."""
    return isinstance(x, (int, float)) and math.isfinite(x)


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


# ---------------------------------------------------------------------------------------------
# fits of dt against lambda


@dataclass(frozen=True)
class InverseFit:
    """dt = C / lambda by least squares through the origin on x = 1 / lambda."""

    c: float
    r2: float | None  # 1 - SS_res / SS_tot; None when SS_tot is 0 (every dt equal) or n < 2
    monotone: bool | None  # dt falls strictly as lambda rises; None with fewer than 2 distinct lambdas
    n: int


@dataclass(frozen=True)
class PowerFit:
    """dt = C * lambda^-alpha by least squares on log dt = log C - alpha log lambda."""

    c: float
    alpha: float
    alpha_se: float | None  # None for n = 2 (no residual degree of freedom)
    alpha_ci: tuple[float, float] | None  # CI_LEVEL interval, Student t with n - 2 degrees of freedom
    r2_log: float | None  # R^2 of the log-log line; None for n = 2 or equal dt
    n: int


@dataclass(frozen=True)
class InterceptFit:
    """dt = a + C / lambda by ordinary least squares (with intercept) on x = 1 / lambda."""

    a: float
    c: float
    r2: float | None  # None for n = 2 (the line passes through both points) or equal dt
    n: int


def _check(lambdas: Sequence[float], dts: Sequence[float], distinct: int) -> None:
    if len(lambdas) != len(dts) or len(lambdas) < max(distinct, 1):
        raise ValueError(f"expected equal lambdas and dts, at least {max(distinct, 1)} of each")
    if any(not lam > 0 for lam in lambdas):
        raise ValueError("expected every lambda > 0")
    if len(set(lambdas)) < distinct:
        raise ValueError(f"expected at least {distinct} distinct lambdas")


def _r2(ys: Sequence[float], fitted: Sequence[float], n_params: int) -> float | None:
    """1 - SS_res / SS_tot with SS_tot about the mean; None unless there are more points than parameters."""
    mean = sum(ys) / len(ys)
    ss_tot = sum((y - mean) ** 2 for y in ys)
    if ss_tot <= 0 or len(ys) <= n_params:
        return None
    return 1.0 - sum((y - f) ** 2 for y, f in zip(ys, fitted)) / ss_tot


def fit_inverse(lambdas: Sequence[float], dts: Sequence[float]) -> InverseFit:
    """Fit dt = C / lambda through the origin: C = sum(x dt) / sum(x^2), x = 1 / lambda."""
    _check(lambdas, dts, 1)
    xs = [1.0 / lam for lam in lambdas]
    c = sum(x * y for x, y in zip(xs, dts)) / sum(x * x for x in xs)
    ordered = [dt for _, dt in sorted(zip(lambdas, dts))]
    monotone = all(a > b for a, b in zip(ordered, ordered[1:])) if len(set(lambdas)) >= 2 else None
    return InverseFit(c=c, r2=_r2(dts, [c * x for x in xs], 1), monotone=monotone, n=len(dts))


def _ols(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """(intercept, slope, sum of (x - mean x)^2) of the least-squares line y = intercept + slope x."""
    xbar, ybar = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - xbar) ** 2 for x in xs)
    slope = sum((x - xbar) * (y - ybar) for x, y in zip(xs, ys)) / sxx
    return ybar - slope * xbar, slope, sxx


def fit_power(lambdas: Sequence[float], dts: Sequence[float], level: float = CI_LEVEL) -> PowerFit:
    """Fit dt = C * lambda^-alpha (the 1/lambda law is alpha = 1). Needs 2 distinct lambdas and every dt > 0;
    the interval alpha +- t_{(1+level)/2, n-2} * se(alpha) needs 3 points."""
    _check(lambdas, dts, 2)
    if any(not dt > 0 for dt in dts):
        raise ValueError("expected every dt > 0 (the power fit is on log dt)")
    xs, ys = [math.log(lam) for lam in lambdas], [math.log(dt) for dt in dts]
    a0, slope, sxx = _ols(xs, ys)
    n = len(xs)
    se = ci = None
    if n > 2:
        ss_res = sum((y - a0 - slope * x) ** 2 for x, y in zip(xs, ys))
        se = math.sqrt(ss_res / (n - 2) / sxx)
        half = t_quantile(0.5 + level / 2, n - 2) * se
        ci = (-slope - half, -slope + half)
    return PowerFit(c=math.exp(a0), alpha=-slope, alpha_se=se, alpha_ci=ci,
                    r2_log=_r2(ys, [a0 + slope * x for x in xs], 2), n=n)


def fit_intercept(lambdas: Sequence[float], dts: Sequence[float]) -> InterceptFit:
    """Fit dt = a + C / lambda by ordinary least squares. Needs 2 distinct lambdas."""
    _check(lambdas, dts, 2)
    xs = [1.0 / lam for lam in lambdas]
    a, c, _ = _ols(xs, dts)
    return InterceptFit(a=a, c=c, r2=_r2(dts, [a + c * x for x in xs], 2), n=len(dts))


def law_fits(lambdas: Sequence[float], dts: Sequence[float]) -> dict[str, Any]:
    """The three fits as fork.json writes them (lambda in the unit given; C in steps x that unit). Fits that
    need more points than there are are None."""
    out: dict[str, Any] = {"n": len(dts), "C": None, "r2": None, "monotone": None, "power": None, "intercept": None}
    if not dts:
        return out
    inv = fit_inverse(lambdas, dts)
    out.update(C=inv.c, r2=inv.r2, monotone=inv.monotone)
    if len(set(lambdas)) >= 2:
        if all(dt > 0 for dt in dts):
            pw = fit_power(lambdas, dts)
            out["power"] = {"C": pw.c, "alpha": pw.alpha, "alpha_se": pw.alpha_se,
                            "alpha_ci95": list(pw.alpha_ci) if pw.alpha_ci else None, "r2_log": pw.r2_log}
        ic = fit_intercept(lambdas, dts)
        out["intercept"] = {"a": ic.a, "C": ic.c, "r2": ic.r2}
    return out


# ---------------------------------------------------------------------------------------------
# seed averaging


@dataclass(frozen=True)
class SeedPoint:
    factor: float  # lambda / lambda0
    weight_decay: float  # factor * lambda0, the absolute lambda the fits use
    dts: tuple[float, ...]  # one per seed, in the order given
    mean_dt: float
    sd: float | None  # sample standard deviation over seeds (n - 1); None for one seed
    se: float | None  # sd / sqrt(number of seeds): the error bar


@dataclass(frozen=True)
class SeedAverage:
    lambda0: float
    points: tuple[SeedPoint, ...]  # the factors every seed has a dt for, by factor
    dropped: tuple[tuple[float, tuple[int, ...]], ...]  # (factor, indices of the seeds without a dt)
    fits: dict[str, Any]  # law_fits on (weight_decay, mean_dt) of the points


def seed_average(lambda0: float, per_seed: Sequence[Mapping[float, float | None]]) -> SeedAverage:
    """Forks of one task at several seeds on one relative grid: `per_seed` maps each seed's factors
    (lambda / lambda0) to its dt, None where that branch does not count (did not grok, or unstable for the
    stable subset). A factor is averaged only when every seed has a dt there; the others are dropped and
    named. The fits use lambda = factor * lambda0, so C is in absolute units."""
    if not per_seed:
        raise ValueError("expected at least one seed")
    if not lambda0 > 0:
        raise ValueError(f"expected lambda0 > 0, got {lambda0}")
    points, dropped = [], []
    for factor in sorted({f for seed in per_seed for f in seed}):
        dts = [seed.get(factor) for seed in per_seed]
        missing = tuple(i for i, dt in enumerate(dts) if dt is None)
        if missing:
            dropped.append((factor, missing))
            continue
        sd = statistics.stdev(dts) if len(dts) > 1 else None
        points.append(SeedPoint(factor, factor * lambda0, tuple(dts), statistics.fmean(dts), sd,
                                None if sd is None else sd / math.sqrt(len(dts))))
    fits = law_fits([p.weight_decay for p in points], [p.mean_dt for p in points])
    return SeedAverage(lambda0, tuple(points), tuple(dropped), fits)


# ---------------------------------------------------------------------------------------------
# Student t and the memorisation-norm spread


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with a positive integer df, by the closed forms for integer df (Abramowitz
    and Stegun 26.7.3-4): with theta = atan(t / sqrt(df)), a finite series in cos(theta)."""
    if not (isinstance(df, int) and df >= 1):
        raise ValueError(f"expected a positive integer df, got {df!r}")
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), df - 2 the last power
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c * c * (2 * k) / (2 * k + 1)
            total += term
        inside = 2 / math.pi * (theta + s * c * total)
    else:  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), df - 2 the last power
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c * c * (2 * k - 1) / (2 * k)
            total += term
        inside = s * total
    return 0.5 + math.copysign(inside / 2, t)


def t_quantile(q: float, df: int) -> float:
    """The t with P(T <= t) = q, by bisection on t_cdf until the bracket cannot be halved in floats."""
    if not 0 < q < 1:
        raise ValueError(f"expected 0 < q < 1, got {q}")
    if q < 0.5:
        return -t_quantile(1 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_cdf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Population standard deviation over the mean; None for fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    if mean == 0:
        return None
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return math.sqrt(var) / abs(mean)
