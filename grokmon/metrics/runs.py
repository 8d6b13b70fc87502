"""Offline analysis of one run from its metrics rows: the grokking crossings, the FSD ceilings (offline rule
and the online detector replayed), the excluded-loss baseline, the lead, and the final / best values.

Pure functions of rows (dicts as in metrics.jsonl); no files. grokmon.rundir reads the rows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from grokmon.metrics.grokking import (
    OnlineCeilingDetector, excluded_loss_baseline, fsd_ceiling_offline, grok_times, lead,
)

BEST_MAX = ("train_acc", "val_acc")
BEST_MIN = ("train_loss", "val_loss")

Row = Mapping[str, Any]


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_events(rows: Sequence[Row], alpha: float = 0.05) -> dict[str, Any]:
    """t_grok_50 / t_grok / t_grok_99, t_fsd (offline), t_fsd_online, t_excluded and lead, from rows."""
    ev = [r for r in rows if _num(r.get("val_acc")) and _num(r.get("step"))]
    times = grok_times([r["step"] for r in ev], [r["val_acc"] for r in ev]) if ev else None
    out: dict[str, Any] = {
        "t_grok_50": times.t50 if times else None,
        "t_grok": times.t95 if times else None,
        "t_grok_99": times.t99 if times else None,
        "t_fsd": None, "t_fsd_online": None, "t_excluded": None, "lead": None,
    }
    probed = [r for r in ev if _num(r.get("fsd")) and _num(r.get("fsd_p")) and _num(r.get("train_acc"))]
    if probed:
        col = lambda k: [r[k] for r in probed]  # noqa: E731
        out["t_fsd"] = fsd_ceiling_offline(col("step"), col("fsd"), col("fsd_p"), col("train_acc"),
                                           col("val_acc"), alpha)
        detector = OnlineCeilingDetector(alpha)  # the engine's detector, replayed: same rule, same answer
        for r in probed:
            detector.update(r["step"], r["fsd"], r["fsd_p"])
        out["t_fsd_online"] = detector.fired_at
        ex = [r for r in probed if _num(r.get("excluded_loss"))]
        if ex:
            out["t_excluded"] = excluded_loss_baseline([r["step"] for r in ex], [r["excluded_loss"] for r in ex],
                                                       [r["train_acc"] for r in ex])
        out["lead"] = lead(out["t_grok"], out["t_fsd"])
    return out


def summarise(rows: Sequence[Row], alpha: float = 0.05) -> dict[str, Any]:
    """Final and best metrics, the grokking crossings and the FSD events, from metrics rows."""
    best: dict[str, Any] = {}
    for key in BEST_MAX + BEST_MIN:
        vals = [(r[key], r["step"]) for r in rows if _num(r.get(key))]
        if vals:
            pick = max(vals, key=lambda v: v[0]) if key in BEST_MAX else min(vals, key=lambda v: v[0])
            best[key] = {"value": pick[0], "step": pick[1]}
    out: dict[str, Any] = {"final": dict(rows[-1]) if rows else None, "best": best}
    out.update(run_events(rows, alpha))
    return out


# One vocabulary for the events of a run, used by `report`, the TUI and the docs. The offline ceiling and the
# online detector are different rules with different names; every screen says which one it shows.
EVENT_LABELS = {
    "t_grok_50": "val_acc first >= 0.50",
    "t_grok": "grokked: val_acc first >= 0.95 (t_grok)",
    "t_grok_99": "val_acc first >= 0.99",
    "t_fsd": "FSD ceiling, offline rule (t_fsd)",
    "t_fsd_online": "FSD detector fired, online rule",
    "t_excluded": "excluded loss starts rising (t_excluded)",
    "lead": "lead = t_grok - t_fsd",
}


def why_missing(key: str, rows: Sequence[Row], events: Mapping[str, Any], *, running: bool,
                metrics_on: bool = True) -> str:
    """Why an event of `events` (run_events' keys) is None, in a few words for a table cell or a status bar:
    "not yet" while the run goes on, "did not grok" / "no ceiling" with the reason once it has ended."""
    if events.get(key) is not None:
        return ""
    accs = [r["val_acc"] for r in rows if _num(r.get("val_acc"))]
    best = f"best val_acc {max(accs):.2f}" if accs else "no evaluation yet"
    grok_keys = ("t_grok_50", "t_grok", "t_grok_99")
    if key in grok_keys:
        return f"not yet ({best})" if running else f"did not grok ({best})"
    if not metrics_on or not any(_num(r.get("fsd")) for r in rows):
        return "Fourier metrics off" if not metrics_on else "no FSD measured yet"
    memorised = any(_num(r.get("train_acc")) and r["train_acc"] >= 0.99 for r in rows)
    if key == "lead":
        missing = [k for k in ("t_grok", "t_fsd") if events.get(k) is None]
        return ("not yet: " if running else "none: ") + " and ".join(
            "no t_grok" if k == "t_grok" else "no FSD ceiling" for k in missing)
    if key == "t_excluded":
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
