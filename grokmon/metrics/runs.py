"""Offline analysis of one run from its metrics rows: the grokking crossings, the FSD ceilings (offline rule
and the online detector replayed), the excluded-loss baselines, the lead, and the final / best values.

Pure functions of rows (dicts as in metrics.jsonl); no files. grokmon.rundir reads the rows; the excluded
loss with the final checkpoint's key frequencies comes in from grokmon.offline, which reads checkpoints.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from grokmon.metrics.grokking import (
    MEMORISED, OnlineCeilingDetector, excluded_loss_baseline, fsd_ceiling_offline, grok_times, lead,
)

BEST_MAX = ("train_acc", "val_acc")
BEST_MIN = ("train_loss", "val_loss")

Row = Mapping[str, Any]


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def probed_rows(rows: Sequence[Row]) -> list[Row]:
    """The probed evaluations the FSD events and the excluded-loss baselines read: rows with a step, val_acc,
    train_acc, fsd and fsd_p (file order)."""
    return [r for r in rows if all(_num(r.get(k)) for k in ("step", "val_acc", "train_acc", "fsd", "fsd_p"))]


def memorised_at(probed: Sequence[Row]) -> int | None:
    """t_mem: the step of the first probed evaluation with train_acc >= 0.99, or None."""
    return next((int(r["step"]) for r in probed if r["train_acc"] >= MEMORISED), None)


def fsd_events(probed: Sequence[Row], fsd: Sequence[float], fsd_p: Sequence[float],
               alpha: float = 0.05) -> dict[str, int | None]:
    """t_fsd (the offline ceiling rule) and t_fsd_online (the engine's detector replayed: same rule, same
    answer) on one FSD series: fsd[i] and fsd_p[i] belong to probed[i] (probed_rows' order). The series is
    the logged one (run_events) or one recomputed from stored spectra; both None without evaluations."""
    if not (len(fsd) == len(fsd_p) == len(probed)):
        raise ValueError(f"fsd_events: {len(probed)} evaluations but {len(fsd)} FSD values and {len(fsd_p)} p-values")
    if not probed:
        return {"t_fsd": None, "t_fsd_online": None}
    steps = [r["step"] for r in probed]
    t_fsd = fsd_ceiling_offline(steps, fsd, fsd_p, [r["train_acc"] for r in probed], [r["val_acc"] for r in probed],
                                alpha)
    detector = OnlineCeilingDetector(alpha)
    for step, value, p in zip(steps, fsd, fsd_p):
        detector.update(step, value, p)
    return {"t_fsd": t_fsd, "t_fsd_online": detector.fired_at}


def run_events(rows: Sequence[Row], alpha: float = 0.05,
               excluded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """t_grok_50 / t_grok / t_grok_99, t_fsd (offline), t_fsd_online, t_excluded, t_excluded_online and lead.

    t_excluded_online is the baseline of the logged `excluded_loss` (each checkpoint's own key frequencies).
    t_excluded is the baseline with the final checkpoint's key frequencies: rows do not hold it, so it is
    taken from `excluded`, grokmon.offline's record (OfflineExcluded.record()), and is None without one.
    The record is passed through as "excluded_offline" (why_missing reads its reason).
    """
    ev = [r for r in rows if _num(r.get("val_acc")) and _num(r.get("step"))]
    times = grok_times([r["step"] for r in ev], [r["val_acc"] for r in ev]) if ev else None
    out: dict[str, Any] = {
        "t_grok_50": times.t50 if times else None,
        "t_grok": times.t95 if times else None,
        "t_grok_99": times.t99 if times else None,
        "t_fsd": None, "t_fsd_online": None, "t_excluded": None, "t_excluded_online": None, "lead": None,
    }
    probed = probed_rows(rows)
    if probed:
        out.update(fsd_events(probed, [r["fsd"] for r in probed], [r["fsd_p"] for r in probed], alpha))
        ex = [r for r in probed if _num(r.get("excluded_loss"))]
        if ex:
            out["t_excluded_online"] = excluded_loss_baseline(
                [r["step"] for r in ex], [r["excluded_loss"] for r in ex], [r["train_acc"] for r in ex])
        out["lead"] = lead(out["t_grok"], out["t_fsd"])
    if excluded is not None:
        step = excluded.get("t_excluded")
        out["t_excluded"] = int(step) if _num(step) else None
    out["excluded_offline"] = dict(excluded) if excluded is not None else None
    return out


def summarise(rows: Sequence[Row], alpha: float = 0.05,
              excluded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Final and best metrics, the grokking crossings and the FSD events, from metrics rows (and the
    offline excluded-loss record, see run_events)."""
    best: dict[str, Any] = {}
    for key in BEST_MAX + BEST_MIN:
        vals = [(r[key], r["step"]) for r in rows if _num(r.get(key))]
        if vals:
            pick = max(vals, key=lambda v: v[0]) if key in BEST_MAX else min(vals, key=lambda v: v[0])
            best[key] = {"value": pick[0], "step": pick[1]}
    out: dict[str, Any] = {"final": dict(rows[-1]) if rows else None, "best": best}
    out.update(run_events(rows, alpha, excluded))
    return out


# One vocabulary for the events of a run, used by `report`, the TUI and the docs. The offline ceiling and the
# online detector are different rules with different names; every screen says which one it shows. So are the
# two excluded-loss baselines: the final checkpoint's key frequencies (the definition) and each checkpoint's own.
EVENT_LABELS = {
    "t_grok_50": "val_acc first >= 0.50",
    "t_grok": "grokked: val_acc first >= 0.95 (t_grok)",
    "t_grok_99": "val_acc first >= 0.99",
    "t_fsd": "FSD ceiling, offline rule (t_fsd)",
    "t_fsd_online": "FSD detector fired, online rule",
    "t_excluded": "excluded loss rises, final keys (t_excluded)",
    "t_excluded_online": "excluded loss rises, online keys (logged)",
    "lead": "lead = t_grok - t_fsd",
}

# Why t_excluded is None when no checkpoint analysis was given (the TUI's live view, a summary from before).
NOT_FROM_CHECKPOINTS = "not computed from the checkpoints here (grokmon report RUN does)"


def why_missing(key: str, rows: Sequence[Row], events: Mapping[str, Any], *, running: bool,
                metrics_on: bool = True) -> str:
    """Why an event of `events` (run_events' keys) is None, in a few words for a table cell or a status bar:
    "not yet" while the run goes on, "did not grok" / "no ceiling" with the reason once it has ended."""
    if events.get(key) is not None:
        return ""
    accs = [r["val_acc"] for r in rows if _num(r.get("val_acc"))]
    # Truncated, not rounded: a best of 0.989 must not read as the 0.99 it fell short of.
    best = f"best val_acc {math.floor(max(accs) * 100 + 1e-9) / 100:.2f}" if accs else "no evaluation yet"
    if key in ("t_grok_50", "t_grok", "t_grok_99"):
        ended = "did not grok" if key == "t_grok" else "not reached"
        return f"not yet ({best})" if running else f"{ended} ({best})"
    if not metrics_on or not any(_num(r.get("fsd")) for r in rows):
        return "Fourier metrics off" if not metrics_on else "no FSD measured yet"
    memorised = any(_num(r.get("train_acc")) and r["train_acc"] >= MEMORISED for r in rows)
    if key == "lead":
        missing = [k for k in ("t_grok", "t_fsd") if events.get(k) is None]
        return ("not yet: " if running else "none: ") + " and ".join(
            "no t_grok" if k == "t_grok" else "no FSD ceiling" for k in missing)
    if key == "t_excluded":
        offline = events.get("excluded_offline")
        if not isinstance(offline, Mapping):
            return NOT_FROM_CHECKPOINTS
        if offline.get("missing"):
            return str(offline["missing"])
    if key in ("t_excluded", "t_excluded_online"):
        if not memorised:
            return "not yet (not memorised)" if running else "never memorised"
        return "not yet (no lasting rise)" if running else "no lasting rise after memorisation"
    if key == "t_fsd_online":  # the detector does not wait for memorisation
        return "not fired yet" if running else "never fired (FSD never plateaued with p(FSD) < alpha)"
    if not memorised:
        return "not yet (train_acc < 0.99: the rule starts at memorisation)" if running else "never memorised"
    if events.get("t_grok") is None and running:
        return "no ceiling yet (provisional until grokking)"
    return "no ceiling (FSD never held its post-grokking level with p(FSD) < alpha for 5 evaluations)"
