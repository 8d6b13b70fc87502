"""FSD recomputed from a run's stored component spectra with the null's exact mu0 and the run's own null
draws, and the events on that series (grokmon's rules). Knows no page."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from grokmon.metrics.fsd import fsd
from grokmon.metrics.grokking import lead
from grokmon.metrics.probe import null_rng
from grokmon.metrics.runs import fsd_events


def fsd_series(spectra: Sequence[dict[str, Any]], seed: int, n_perm: int, statistic: str, m: int,
               alpha: float) -> dict[int, tuple[float, float]]:
    """step -> (FSD with the exact mu0, p) from stored component spectra (input side first, "unembed" last),
    with the run's own null draws (null_rng(seed, step))."""
    out = {}
    for s in spectra:
        names = [k for k in s if k != "step"]
        e = np.array([s[k] for k in names], dtype=np.float64)  # [C + 1, K]
        res = fsd(e[:-1], e[-1], n_perm=n_perm, seed=null_rng(seed, s["step"]), statistic=statistic, m=m,
                  alpha=alpha)
        out[int(s["step"])] = (res.fsd, res.p_value)
    return out


def series_events(probed: Sequence[dict[str, Any]], series: dict[int, tuple[float, float]], alpha: float,
                  t_grok: int | None) -> dict[str, Any]:
    """t_fsd (offline rule), t_fsd_online (the detector replayed) and the lead on one recomputed FSD series, over
    the probed evaluations it covers (grokmon.metrics.runs.fsd_events: the rules run_events applies to the
    logged series)."""
    rows = [r for r in probed if r["step"] in series]
    ev = fsd_events(rows, [series[r["step"]][0] for r in rows], [series[r["step"]][1] for r in rows], alpha)
    return {**ev, "lead": lead(t_grok, ev["t_fsd"])}
