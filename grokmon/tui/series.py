"""Plot-data preparation for the panels: downsampling to a width, debiased EMA, log10 with masking, ticks.

Pure numpy on plain arrays (NaN = missing); knows nothing about Textual, plotext or the run's files.
"""

from __future__ import annotations

import math

import numpy as np

SMOOTHING = (None, 0.6, 0.9)  # the `s` key's cycle: off, then debiased EMA with these decays (per evaluation)


def downsample_indices(x: np.ndarray, ys: list[np.ndarray], buckets: int) -> np.ndarray:
    """Indices of points to draw: per x-bucket the first point and each series' min and max.

    Keeps spikes (a loss blow-up survives) while bounding the points to ~ buckets * (1 + 2 * len(ys)).
    x must be non-decreasing. Every index is kept when there are few points already.
    """
    n = len(x)
    if n <= 2 * buckets or buckets < 1:
        return np.arange(n)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [edges[:-1], np.array([n - 1])]
    starts, ends = edges[:-1], edges[1:]
    for y in ys:
        lo = np.where(np.isnan(y), np.inf, y)
        hi = np.where(np.isnan(y), -np.inf, y)
        # A loop over buckets is cheap: there are ~2x the widget's width of them (a few hundred).
        for a, b in zip(starts, ends):
            if b > a:
                keep.append(np.array([a + int(np.argmin(lo[a:b])), a + int(np.argmax(hi[a:b]))]))
    return np.unique(np.concatenate(keep))


class Ema:
    """Debiased EMA over a growing series, continued incrementally across redraws.

    m_t = beta m_(t-1) + (1 - beta) y_t, reported as m_t / (1 - beta^t) with t counting finite points;
    a NaN point stays NaN and leaves the average alone. `update` recomputes from scratch when the series
    did not just grow (a resumed run replaced rows, or old rows were thinned): pass `epoch` to say so.
    """

    def __init__(self, beta: float) -> None:
        self.beta = beta
        self._epoch: int | None = None
        self._m = 0.0
        self._w = 0.0
        self._out: list[float] = []

    def update(self, y: np.ndarray, epoch: int = 0) -> np.ndarray:
        if epoch != self._epoch or len(y) < len(self._out):
            self._epoch, self._m, self._w, self._out = epoch, 0.0, 0.0, []
        beta, m, w, out = self.beta, self._m, self._w, self._out
        for v in y[len(out):].tolist():
            if math.isnan(v):
                out.append(math.nan)
                continue
            m = beta * m + (1.0 - beta) * v
            w = beta * w + (1.0 - beta)
            out.append(m / w)
        self._m, self._w = m, w
        return np.asarray(out, dtype=float)


def log10_masked(y: np.ndarray) -> np.ndarray:
    """log10(y), with y <= 0 and NaN as NaN (not drawn): loss can reach 0 and p-values are >= 1/(N+1)."""
    out = np.full(len(y), np.nan)
    ok = np.isfinite(y) & (y > 0)
    out[ok] = np.log10(y[ok])
    return out


def finite_xy(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """The finite points as plain lists (plotext wants lists, and draws NaN as garbage)."""
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok].tolist(), y[ok].tolist()


def nice_step(span: float, n: int) -> float:
    """A 1-2-5 step that puts about n ticks over span."""
    if span <= 0 or n < 1:
        return 1.0
    raw = span / n
    base = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if mult * base >= raw:
            return mult * base
    return 10 * base


def step_ticks(lo: float, hi: float, n: int) -> tuple[list[float], list[str]]:
    """Tick positions and labels for a step axis: 0, 2k, 4k ... (plotext's own are like 997.5)."""
    step = max(1.0, nice_step(hi - lo, n))
    first = math.ceil(lo / step) * step
    ticks = [first + i * step for i in range(int((hi - first) // step) + 1)]
    return ticks, [format_step(t) for t in ticks]


def format_step(v: float) -> str:
    v = float(v)
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def lin_ticks(lo: float, hi: float, n: int) -> tuple[list[float], list[str]]:
    """Evenly spaced 1-2-5 ticks inside [lo, hi] (plotext's own land on 0.33, 0.83 at small heights)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [], []
    step = nice_step(hi - lo, max(n, 1))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]
    return ticks, [format_value(t) if abs(t) > 1e-12 else "0" for t in ticks]


def log_ticks(lo: float, hi: float, n: int) -> tuple[list[float], list[str]]:
    """Ticks for an axis holding log10 values: whole decades when the span allows, labelled as values."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        return [], []
    if hi - lo < 1e-9:
        return [lo], [format_value(10 ** lo)]
    step = max(1.0, float(math.ceil((hi - lo) / max(n, 1)))) if hi - lo >= 1 else nice_step(hi - lo, n)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
    return ticks, [format_value(10 ** t) for t in ticks]


def format_value(v: float | None) -> str:
    """A compact number for labels and the status bar: 0.001 -> 1e-3, 0.25 -> 0.25, 1200 -> 1.2e3."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if 0.01 <= a < 1000:
        return f"{v:.3g}"
    mant, exp = f"{v:.2e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"
