"""Events in a run (docs/metrics.md): grokking crossings, the FSD ceiling (offline and online), the excluded-loss
baseline, lead, phase and the sign test. Pure functions of per-evaluation series; no I/O, no tensors.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MEMORISED = 0.99  # train accuracy that counts as memorised (train acc ~1)
GROKKED = 0.95  # val accuracy that defines t_grok
GROK_THRESHOLDS = (0.5, GROKKED, 0.99)  # the recorded crossings: t_grok_50, t_grok, t_grok_99

Series = Sequence[float] | np.ndarray


def _arrays(*xs: Series) -> list[np.ndarray]:
    out = [np.asarray(x, dtype=np.float64).reshape(-1) for x in xs]
    if len({a.size for a in out}) > 1:
        raise ValueError(f"series lengths differ: {[a.size for a in out]}")
    return out


def crossing_step(steps: Series, values: Series, threshold: float) -> int | None:
    """The step of the first evaluation with value >= threshold, or None."""
    s, v = _arrays(steps, values)
    hit = np.flatnonzero(v >= threshold)
    return int(s[hit[0]]) if hit.size else None


@dataclass(frozen=True)
class GrokTimes:
    t50: int | None
    t95: int | None  # t_grok
    t99: int | None


def grok_times(steps: Series, val_acc: Series) -> GrokTimes:
    """First evaluations with val_acc >= 0.5 / 0.95 / 0.99; t95 is t_grok."""
    return GrokTimes(*(crossing_step(steps, val_acc, t) for t in GROK_THRESHOLDS))


def t_grok_of(steps: Series, val_acc: Series) -> int | None:
    """t_grok: the step of the first evaluation with val_acc >= GROKKED (the one definition; GrokClock is
    the same rule fed one evaluation at a time)."""
    return crossing_step(steps, val_acc, GROKKED)


def is_grokked(val_acc: float) -> bool:
    """The t_grok rule for one evaluation (what t_grok_of finds the first of)."""
    return val_acc >= GROKKED


class GrokClock:
    """t_grok followed live: `observe` each evaluation in step order; the first that is_grokked wins."""

    def __init__(self, t_grok: int | None = None) -> None:
        self.t_grok = t_grok

    def observe(self, step: int, val_acc: float) -> int | None:
        if self.t_grok is None and is_grokked(val_acc):
            self.t_grok = int(step)
        return self.t_grok


def fsd_ceiling_offline(steps: Series, fsd: Series, p_values: Series, train_acc: Series,
                        val_acc: Series, alpha: float = 0.05, *, frac: float = 0.9, run: int = 5,
                        pre_span: int = 1000, post_span: int = 2000) -> int | None:
    """t_fsd: the first evaluation, at or after memorisation, from which the next `run` evaluations (itself
    included) all have FSD >= FSD_pre + frac (FSD_post - FSD_pre) and p < alpha.

    FSD_pre = median FSD over [t_mem, t_mem + pre_span], t_mem the first train_acc >= 0.99.
    FSD_post = median FSD over [t_grok, t_grok + post_span]; a run that never grokked uses its last 10% of
    steps. None when the run never memorised or FSD_post <= FSD_pre (no ceiling to reach).
    """
    s, f, pv, tr, va = _arrays(steps, fsd, p_values, train_acc, val_acc)
    t_mem = crossing_step(s, tr, MEMORISED)
    if t_mem is None:
        return None
    pre = f[(s >= t_mem) & (s <= t_mem + pre_span)]
    t_grok = crossing_step(s, va, GROKKED)
    if t_grok is not None:
        post = f[(s >= t_grok) & (s <= t_grok + post_span)]
    else:
        post = f[s >= s[-1] - 0.1 * (s[-1] - s[0])]
    fsd_pre, fsd_post = float(np.median(pre)), float(np.median(post))
    if fsd_post <= fsd_pre:
        return None
    ok = (f >= fsd_pre + frac * (fsd_post - fsd_pre)) & (pv < alpha)
    for i in np.flatnonzero(s >= t_mem):
        if i + run <= ok.size and ok[i:i + run].all():
            return int(s[i])
    return None


def ols_slope(x: Series, y: Series) -> float:
    """Least-squares slope dy/dx; 0.0 when x has no spread."""
    xa, ya = _arrays(x, y)
    dx = xa - xa.mean()
    var = float(dx @ dx)
    return float(dx @ (ya - ya.mean()) / var) if var > 0 else 0.0


class OnlineCeilingDetector:
    """Fires once, without looking ahead, when p < alpha, FSD >= frac * running max (this evaluation
    included) and the OLS slope of FSD over the last `window` evaluations is below max_slope per 1000 steps
    (a falling FSD passes too: the rule is one-sided, as defined). Needs `window` evaluations first.
    """

    def __init__(self, alpha: float = 0.05, *, frac: float = 0.9, window: int = 10,
                 max_slope_per_1000: float = 0.01) -> None:
        self.alpha, self.frac, self.window, self.max_slope = alpha, frac, window, max_slope_per_1000
        self._steps: deque[float] = deque(maxlen=window)
        self._fsd: deque[float] = deque(maxlen=window)
        self.running_max = -math.inf
        self.fired_at: int | None = None

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

    def update(self, step: int, fsd: float, p_value: float) -> bool:
        """Record one evaluation; True only on the evaluation where the detector first fires."""
        self._steps.append(float(step))
        self._fsd.append(float(fsd))
        self.running_max = max(self.running_max, float(fsd))
        if self.fired or len(self._fsd) < self.window:
            return False
        slope = ols_slope(list(self._steps), list(self._fsd)) * 1000.0
        if p_value < self.alpha and fsd >= self.frac * self.running_max and slope < self.max_slope:
            self.fired_at = int(step)
            return True
        return False


def excluded_loss_baseline(steps: Series, excluded_loss: Series, train_acc: Series, *,
                           factor: float = 2.0, min_rise: float = 0.01, persist: int = 5) -> int | None:
    """The step at which the excluded loss starts rising (circuit formation), causally.

    From memorisation (first train_acc >= 0.99) on, track the running minimum m_i of the excluded loss;
    the baseline is the first evaluation i whose value exceeds max(factor * m_i, m_i + min_rise) and whose
    next `persist` evaluations (i included) all stay above that same level. min_rise keeps float noise
    around a near-zero minimum from counting as a rise. None if it never rises. A non-finite value (a
    diverged checkpoint) neither enters the minimum nor counts as above the level.
    """
    s, e, tr = _arrays(steps, excluded_loss, train_acc)
    t_mem = crossing_step(s, tr, MEMORISED)
    if t_mem is None:
        return None
    start = int(np.flatnonzero(s >= t_mem)[0])
    tail = e[start:]
    finite = np.isfinite(tail)
    run_min = np.minimum.accumulate(np.where(finite, tail, np.inf))
    level = np.maximum(factor * run_min, run_min + min_rise)
    above = finite & (tail > level)
    for j in range(tail.size - persist + 1):
        if above[j:j + persist].all():
            return int(s[start + j])
    return None


def lead(t_grok: int | None, t_fsd: int | None) -> int | None:
    """t_grok - t_fsd (positive when FSD's ceiling comes first), None if either is unknown."""
    return None if t_grok is None or t_fsd is None else int(t_grok) - int(t_fsd)


def phase(train_acc: float, val_acc: float, t_fsd_known: bool, t_grok_known: bool) -> str:
    """The status-bar phase. Later events win: generalised (t_grok seen, or val_acc >= 0.95) > cleanup
    (t_fsd seen) > circuit formation (train_acc >= 0.99) > memorisation.
    """
    if t_grok_known or val_acc >= GROKKED:
        return "generalised"
    if t_fsd_known:
        return "cleanup"
    if train_acc >= MEMORISED:
        return "circuit formation"
    return "memorisation"


def sign_test(leads: Sequence[float]) -> tuple[int, int, float]:
    """Exact two-sided binomial sign test of leads > 0; zero leads are dropped. Returns (n_pos, n, p)."""
    nonzero = [x for x in leads if x != 0]
    n, k = len(nonzero), sum(1 for x in nonzero if x > 0)
    if n == 0:
        return 0, 0, 1.0
    lower = sum(math.comb(n, i) for i in range(0, k + 1)) / 2.0 ** n
    upper = sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0 ** n
    return k, n, min(1.0, 2.0 * min(lower, upper))
