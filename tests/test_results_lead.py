"""The FSD events on one series: grokmon.metrics.runs.fsd_events (the offline ceiling and the online detector
replayed), which run_events applies to the logged FSD and scripts/results_pages/exact_fsd to a recomputed one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grokmon.metrics.runs import fsd_events, probed_rows, run_events

# scripts/ is not a package: `python scripts/results.py` finds results_pages beside it on sys.path; so does this.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from results_pages.exact_fsd import series_events  # noqa: E402


# ---------------------------------------------------------------------------------------------
# the FSD events on a series (grokmon.metrics.runs.fsd_events, shared with the exact-mu0 recomputation)

STEPS = list(range(0, 5100, 100))
T_FSD, T_FSD_ONLINE, T_GROK, T_EXCLUDED_ONLINE = 1000, 1900, 2000, 800


def planted_rows() -> list[dict]:
    """Memorised from step 100; FSD 0.1 (p 0.5) until 900, then 0.9 (p 0.001); val_acc 1 from 2000; the logged
    excluded loss 0.01, then 1 from 800. By hand: the offline ceiling at 1000 (pre median 0.1, post 0.9, level
    0.82 held from there); the detector at 1900 (its 10-evaluation window is flat from 1000 to 1900); the online
    excluded-loss baseline at 800."""
    return [{"step": s, "train_acc": 0.5 if s == 0 else 1.0, "val_acc": 1.0 if s >= T_GROK else 0.1,
             "fsd": 0.9 if s >= T_FSD else 0.1, "fsd_p": 0.001 if s >= T_FSD else 0.5,
             "excluded_loss": 1.0 if s >= T_EXCLUDED_ONLINE else 0.01, "train_loss": 0.1, "val_loss": 1.0}
            for s in STEPS]


@pytest.mark.unit
def test_fsd_events_find_the_planted_ceiling_and_run_events_uses_them() -> None:
    probed = probed_rows(planted_rows())
    ev = fsd_events(probed, [r["fsd"] for r in probed], [r["fsd_p"] for r in probed], 0.05)
    assert ev == {"t_fsd": T_FSD, "t_fsd_online": T_FSD_ONLINE}
    logged = run_events(planted_rows())
    assert (logged["t_fsd"], logged["t_fsd_online"], logged["lead"]) == (T_FSD, T_FSD_ONLINE, T_GROK - T_FSD)
    assert fsd_events([], [], [], 0.05) == {"t_fsd": None, "t_fsd_online": None}
    with pytest.raises(ValueError):
        fsd_events(probed, [0.1], [0.5], 0.05)


@pytest.mark.unit
def test_a_recomputed_series_gets_the_same_events_on_the_evaluations_it_covers() -> None:
    probed = probed_rows(planted_rows())
    series = {r["step"]: (r["fsd"], r["fsd_p"]) for r in probed}
    assert series_events(probed, series, 0.05, T_GROK) == {"t_fsd": T_FSD, "t_fsd_online": T_FSD_ONLINE,
                                                           "lead": T_GROK - T_FSD}
    # Without the steps 1000-1400 the plateau first holds 5 evaluations at 1500; the detector's window at 2400.
    thinned = {s: v for s, v in series.items() if not 1000 <= s < 1500}
    assert series_events(probed, thinned, 0.05, T_GROK) == {"t_fsd": 1500, "t_fsd_online": 2400, "lead": 500}
    assert series_events(probed, {}, 0.05, T_GROK) == {"t_fsd": None, "t_fsd_online": None, "lead": None}
