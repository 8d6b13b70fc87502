"""The lead experiment's collect step (docs/results/fsd_lead.json): the lead of t_fsd over t_grok and the
FSD-before-excluded verdicts from a sweep's runs. Knows nothing of the page; lead_render.py writes it from that JSON."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from grokmon.metrics.grokking import sign_test
from grokmon.metrics.runs import probed_rows, run_events
from grokmon.rundir.readers import read_config, read_jsonl
from grokmon.rundir.records import DONE

from .common import provenance, run_state, sweep_plan, sweep_wall
from .exact_fsd import fsd_series, series_events

LEAD_RANGE = (500, 3000)  # the paper's lead range, steps

# SPEC section 5 (Sivasankar 2026; Nanda et al. for p = 53 at weight decay 5).
PAPER_LEAD = {"lead_range": list(LEAD_RANGE), "mean_lead": 1722, "n_positive": 9, "n": 9, "sign_test_p": 0.004,
              "fsd_before_excluded": [9, 9], "grid": "p in {53, 71, 97, 113, 131} x 3 seeds"}

# A lead run is done when the sweep would not train it again (grokmon.rundir.records.DONE: completed, or
# diverged). A stopped run may be resumed by the sweep, so it is not done; neither is one interrupted, failed or
# still running: their offline events may still move.
DONE_STATUSES = DONE

# The four statistics of the lead table: (key, label, statistic, m); m None = the final number of key freqs.
STATISTICS = (("overlap_m5", "top-5 overlap (the default)", "overlap", 5),
              ("overlap_m3", "top-3 overlap", "overlap", 3),
              ("overlap_mkey", "top-m overlap, m = number of key frequencies (final checkpoint)", "overlap", None),
              ("pearson", "Pearson", "pearson", None))



def before(t_fsd: int | None, t_excluded: int | None, grokked: bool) -> bool | None:
    """The FSD-before-excluded verdict: only for a run that grokked, with both times known."""
    if not grokked or t_fsd is None or t_excluded is None:
        return None
    return t_fsd < t_excluded


def collect_lead_run(run_dir: Path, name: str, seed: int | None) -> dict[str, Any]:
    """One lead run: events from its rows, t_fsd per statistic recomputed from spectra.jsonl with the exact mu0,
    t_excluded from its checkpoints with the final keys (grokmon.offline), and the logged-vs-exact FSD check."""
    status, summary, rows = run_state(run_dir)
    line: dict[str, Any] = {"name": name, "run_dir": str(run_dir), "status": status, "done": status in DONE_STATUSES,
                            "last_step": rows[-1]["step"] if rows else None}
    if not (run_dir / "config.json").is_file():
        return {**line, "p": None, "seed": seed, "weight_decay": None}
    cfg = read_config(run_dir)
    line.update(p=cfg.task.p, seed=cfg.model.seed if seed is None else seed, weight_decay=cfg.optim.weight_decay)
    if not line["done"]:
        return line  # offline events of a run that may go on (running, stopped) are provisional: not tabulated
    me = cfg.metrics
    from grokmon.offline import excluded_record  # torch and the model: only for a finished run

    t0 = time.perf_counter()
    # summary None: recomputed from the checkpoints, not the summary's record (the page says "recomputed").
    excluded = excluded_record(run_dir, None, rows, cfg)
    seconds = time.perf_counter() - t0
    logged = run_events(rows, me.alpha, excluded)  # t_excluded from the record, kept as "excluded_offline"
    t_grok = logged["t_grok"]
    n_key = len(excluded["key_freqs"])
    line.update({k: logged[k] for k in ("t_grok_50", "t_grok", "t_grok_99", "t_excluded", "t_excluded_online",
                                        "excluded_offline")})
    line.update(key_freqs=excluded["key_freqs"], n_key=n_key, excluded_seconds=round(seconds, 1),
                steps=summary.get("steps") if summary else None, wall_s=summary.get("wall_s") if summary else None)
    spectra = read_jsonl(run_dir / "spectra.jsonl") if (run_dir / "spectra.jsonl").is_file() else []
    probed = probed_rows(rows)
    grokked = t_grok is not None
    by_stat: dict[str, Any] = {}
    for key, _, stat, m in STATISTICS:
        m_used = m if m is not None else (n_key if stat == "overlap" else None)
        if stat == "overlap" and not m_used:
            by_stat[key] = {"m": None, "t_fsd": None, "t_fsd_online": None, "lead": None,
                            "fsd_before_excluded": None, "fsd_before_excluded_online": None}
            continue
        series = fsd_series(spectra, cfg.model.seed, me.n_perm, stat, m_used or 5, me.alpha)
        ev = series_events(probed, series, me.alpha, t_grok)
        by_stat[key] = {"m": m_used, **ev,
                        "fsd_before_excluded": before(ev["t_fsd"], line["t_excluded"], grokked),
                        "fsd_before_excluded_online": before(ev["t_fsd"], line["t_excluded_online"], grokked)}
        if stat == me.fsd_statistic and (stat == "pearson" or m_used == me.fsd_top_m):
            line["mu0_check"] = mu0_check(probed, series, logged, ev, key)
    line["by_statistic"] = by_stat
    return line


def mu0_check(probed: Sequence[dict[str, Any]], series: dict[int, tuple[float, float]], logged: dict[str, Any],
              exact: dict[str, Any], key: str) -> dict[str, Any]:
    """Issue 13 item 2: the logged FSD (the run's own mu0) against the recomputation with the exact mu0."""
    pairs = [(r["step"], r["fsd"], r["fsd_p"], *series[r["step"]]) for r in probed if r["step"] in series]
    diffs = [(abs(f_exact - f_log), s) for s, f_log, _, f_exact, _ in pairs]
    worst = max(diffs) if diffs else (None, None)
    return {"statistic": key, "n_evaluations": len(pairs), "max_abs_fsd_diff": worst[0], "at_step": worst[1],
            "max_abs_p_diff": max((abs(pe - pl) for _, _, pl, _, pe in pairs), default=None),
            "t_fsd_logged": logged["t_fsd"], "t_fsd_exact": exact["t_fsd"],
            "t_fsd_changed": logged["t_fsd"] != exact["t_fsd"],
            "t_fsd_online_logged": logged["t_fsd_online"], "t_fsd_online_exact": exact["t_fsd_online"]}


def lead_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per statistic, over the finished runs: the leads, their mean, the sign test (over the non-zero leads), how
    many sit inside the paper's range, the FSD-before-excluded verdicts, and grokked_counts (over the grokked runs,
    the denominator of the page's "in every grokked run" claims)."""
    done = [r for r in runs if r["done"]]
    out = {}
    for key, *_ in STATISTICS:
        cells = [r["by_statistic"][key] for r in done]
        leads = [c["lead"] for c in cells if c["lead"] is not None]
        n_pos, n, p = sign_test(leads)
        verdicts = [c["fsd_before_excluded"] for c in cells if c["fsd_before_excluded"] is not None]
        online = [c["fsd_before_excluded_online"] for c in cells if c["fsd_before_excluded_online"] is not None]
        out[key] = {"n_done": len(done), "n_grokked": sum(r["t_grok"] is not None for r in done),
                    "leads": leads, "n_leads": len(leads), "mean_lead": statistics.fmean(leads) if leads else None,
                    "n_positive": n_pos, "sign_test_n": n, "sign_test_p": p if leads else None,
                    "inside_range": sum(LEAD_RANGE[0] <= x <= LEAD_RANGE[1] for x in leads),
                    "n_verdicts": len(verdicts), "n_fsd_before_excluded": sum(verdicts),
                    "n_verdicts_online": len(online), "n_fsd_before_excluded_online": sum(online)}
        out[key].update(grokked_counts(runs, key))
    return out


def grokked_counts(runs: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    """One statistic over the finished runs that grokked, which the paper's "in every run" claims are about:
    leads positive, zero, negative or missing (no t_fsd), inside the paper's range, and the FSD-before-excluded
    verdicts (before, not before, none for want of t_excluded). Render recomputes it from the runs, so a JSON
    collected before these counts existed renders the same."""
    cells = [(r, r["by_statistic"][key]) for r in runs if r["done"] and r["t_grok"] is not None]
    leads = [c["lead"] for _, c in cells if c["lead"] is not None]
    out = {"n_grokked": len(cells), "n_no_fsd": sum(c["t_fsd"] is None for _, c in cells),
           "n_lead_positive": sum(x > 0 for x in leads), "n_lead_zero": sum(x == 0 for x in leads),
           "n_lead_negative": sum(x < 0 for x in leads),
           "n_lead_inside": sum(LEAD_RANGE[0] <= x <= LEAD_RANGE[1] for x in leads)}
    for suffix, t_excluded in (("", "t_excluded"), ("_online", "t_excluded_online")):
        verdicts = [c["fsd_before_excluded" + suffix] for _, c in cells]
        out["n_before" + suffix] = sum(v is True for v in verdicts)
        out["n_not_before" + suffix] = sum(v is False for v in verdicts)
        out["n_no_excluded" + suffix] = sum(c["t_fsd"] is not None and r[t_excluded] is None for r, c in cells)
    return out


def collect_lead(args: argparse.Namespace) -> dict[str, Any]:
    sweeps, runs = [], []
    for d in args.from_:
        plan = sweep_plan(Path(d))
        first = len(runs)
        for r in plan["runs"]:
            print(f"  {r['name']} ({plan['dir']})", flush=True)
            line = collect_lead_run(Path(r["run_dir"]), r["name"], r["seed"])
            if line["p"] is None and "task.p" in r["point"]:  # not started: the plan says which prime
                line["p"] = int(r["point"]["task.p"])
            runs.append({**line, "sweep": plan["dir"]})
        sweeps.append({k: plan[k] for k in ("dir", "profile", "command", "overrides")}
                      | {"n_planned": len(plan["runs"]), "wall": sweep_wall(runs[first:])})
    runs.sort(key=lambda r: (r["p"] or 0, r["seed"] if r["seed"] is not None else 0, r["name"]))
    done = [r for r in runs if r["done"]]
    checks = [r["mu0_check"] for r in done if "mu0_check" in r]
    out = {
        "experiment": "lead", **provenance(args), "paper": PAPER_LEAD, "sweeps": sweeps,
        "statistics": [{"key": k, "label": label, "statistic": s, "m": m} for k, label, s, m in STATISTICS],
        "n_planned": len(runs), "n_done": len(done),
        "not_done": [{"name": r["name"], "status": r["status"], "last_step": r["last_step"]} for r in runs
                     if not r["done"]],
        "runs": runs, "summary": lead_summary(runs),
        "mu0": {"n_runs": len(checks),
                "max_abs_fsd_diff": max((c["max_abs_fsd_diff"] for c in checks if c["max_abs_fsd_diff"] is not None),
                                        default=None),
                "n_t_fsd_changed": sum(c["t_fsd_changed"] for c in checks)},
        "wall": sweep_wall(runs),
    }
    if args.earlier:
        out["earlier"] = {"source": str(args.earlier), "by_statistic": json.loads(Path(args.earlier).read_text())}
    return out
