"""The results pages in docs/results/, in two stages: `collect` reads run directories (or collected fork data)
and writes one JSON file per experiment with every number a page shows; `render` writes the pages from
those JSON files alone. Usage:

    python scripts/results.py collect lead      --from SWEEP_DIR ... [--out docs/results/fsd_lead.json]
    python scripts/results.py collect precision --from SWEEP_DIR ... [--out docs/results/precision.json]
    python scripts/results.py collect forks     [--from docs/results/wd_fork.json | FORK_DIR ...]
    python scripts/results.py render [lead|forks|precision ...] [--all] [--dir docs/results]

collect takes --commit (the commit the runs were trained at) and --conditions (threads, load) to record.
The definitions are docs/metrics.md's; the analysis is grokmon's (grokmon.metrics, grokmon.offline,
grokmon.experiments.fork); this script only gathers, counts and writes.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from grokmon.errors import GrokmonError
from grokmon.experiments.fork import LAMBDA_UNIT, exclusion_reason, fit_section, fmt_cell, seed_averaged_fits
from grokmon.metrics.fsd import fsd
from grokmon.metrics.grokking import OnlineCeilingDetector, fsd_ceiling_offline, lead, sign_test
from grokmon.metrics.probe import null_rng
from grokmon.metrics.runs import probed_rows, run_events, why_missing
from grokmon.rundir.readers import read_config, read_json, read_jsonl, read_rows, read_summary

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
PAGES = {"lead": "fsd_lead", "forks": "wd_fork", "precision": "precision"}  # experiment -> page name
OUTPUTS = {"lead": "fsd_lead.json", "forks": "wd_fork_fits.json", "precision": "precision.json"}
LEAD_RANGE = (500, 3000)  # the paper's lead range, steps
R2_RANGE = (0.89, 0.99)  # the paper's R^2 range on seed-averaged dt

# SPEC sections 5 and 6 (Sivasankar 2026; Nanda et al. for p = 53 at weight decay 5).
PAPER_LEAD = {"lead_range": list(LEAD_RANGE), "mean_lead": 1722, "n_positive": 9, "n": 9, "sign_test_p": 0.004,
              "fsd_before_excluded": [9, 9], "grid": "p in {53, 71, 97, 113, 131} x 3 seeds"}
PAPER_FORK = {"r2_range": list(R2_RANGE), "r2_on": "seed-averaged dt", "primes": [53, 97, 131], "alpha": 1.0}

# The four statistics of the lead table: (key, label, statistic, m); m None = the final number of key freqs.
STATISTICS = (("overlap_m5", "top-5 overlap (the default)", "overlap", 5),
              ("overlap_m3", "top-3 overlap", "overlap", 3),
              ("overlap_mkey", "top-m overlap, m = number of key frequencies (final checkpoint)", "overlap", None),
              ("pearson", "Pearson", "pearson", None))


# ---------------------------------------------------------------------------------------------
# small helpers


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=RESULTS, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance(args: argparse.Namespace) -> dict[str, Any]:
    """Where a JSON file came from: the command, the checkout's commit, the runs' commit and the conditions."""
    head = _git("rev-parse", "--short", "HEAD") or None
    return {"command": "python scripts/results.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "collected_at_commit": head, "trained_at_commit": args.commit, "conditions": args.conditions}


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def spread(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, sample sd (None for one value), min, max and range of the numbers given."""
    xs = [float(v) for v in values if _num(v)]
    if not xs:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None, "range": None}
    return {"n": len(xs), "mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else None,
            "min": min(xs), "max": max(xs), "range": max(xs) - min(xs)}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


def sweep_plan(sweep_dir: Path) -> dict[str, Any]:
    """A sweep directory's plan from its sweep.json (runs listed in it, done or not), or, without one, every run
    directory in it; with the `grokmon sweep` command that made it."""
    sweep = read_json(sweep_dir / "sweep.json")
    if sweep is None:
        names = sorted(d.name for d in sweep_dir.iterdir() if (d / "config.json").is_file())
        return {"dir": str(sweep_dir), "profile": None, "command": None, "overrides": [],
                "runs": [{"name": n, "seed": None, "run_dir": str(sweep_dir / n), "point": {}} for n in names]}
    cmd = [f"grokmon sweep {sweep['profile']}"]
    cmd += [f"--grid {k}={','.join(v)}" for k, v in sweep.get("grid", {}).items()]
    cmd += [f"--seeds {','.join(str(s) for s in sweep.get('seeds', []))}"]
    cmd += [f"--set {o}" for o in sweep.get("overrides", [])] + [f"--out {sweep_dir}"]
    runs = [{"name": r["name"], "seed": r.get("seed"), "run_dir": str(sweep_dir / r["name"]),
             "point": r.get("point", {})} for r in sweep["runs"]]
    return {"dir": str(sweep_dir), "profile": sweep.get("profile"), "command": " ".join(cmd),
            "overrides": list(sweep.get("overrides", [])), "runs": runs}


def run_state(run_dir: Path) -> tuple[str, dict[str, Any] | None, list[dict[str, Any]]]:
    """(status, summary, rows): status is summary.json's, "running / interrupted" without one, or
    "not started" without a run directory."""
    if not (run_dir / "config.json").is_file():
        return "not started", None, []
    summary = read_summary(run_dir)
    rows = read_rows(run_dir)
    return (summary.get("status") or "?") if summary else "running (no summary.json)", summary, rows


def sweep_wall(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Training time summed over the finished runs, and the span of all runs' events."""
    return {"sum_run_wall_s": sum(r["wall_s"] for r in runs if r["done"] and _num(r.get("wall_s"))),
            **run_times(Path(r["run_dir"]) for r in runs)}


def run_times(run_dirs: Iterable[Path]) -> dict[str, Any]:
    """The first start and the last finish over runs (events.jsonl wall-clock times, epoch seconds)."""
    starts, ends = [], []
    for d in run_dirs:
        events = read_jsonl(d / "events.jsonl") if (d / "events.jsonl").is_file() else []
        starts += [e["time"] for e in events if e.get("type") == "start" and _num(e.get("time"))]
        ends += [e["time"] for e in events if e.get("type") == "finish" and _num(e.get("time"))]
    first, last = (min(starts) if starts else None), (max(ends) if ends else None)
    return {"first_start": first, "last_finish": last,
            "span_s": last - first if first is not None and last is not None else None}


# ---------------------------------------------------------------------------------------------
# collect lead


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


def fsd_events(probed: Sequence[dict[str, Any]], series: dict[int, tuple[float, float]], alpha: float,
               t_grok: int | None) -> dict[str, Any]:
    """t_fsd (offline rule), t_fsd_online (the detector replayed) and the lead on one FSD series."""
    rows = [r for r in probed if r["step"] in series]
    if not rows:
        return {"t_fsd": None, "t_fsd_online": None, "lead": None}
    steps = [r["step"] for r in rows]
    values, ps = [series[s][0] for s in steps], [series[s][1] for s in steps]
    t_fsd = fsd_ceiling_offline(steps, values, ps, [r["train_acc"] for r in rows], [r["val_acc"] for r in rows],
                                alpha)
    detector = OnlineCeilingDetector(alpha)
    for s, f, p in zip(steps, values, ps):
        detector.update(s, f, p)
    return {"t_fsd": t_fsd, "t_fsd_online": detector.fired_at, "lead": lead(t_grok, t_fsd)}


def before(t_fsd: int | None, t_excluded: int | None, grokked: bool) -> bool | None:
    """The FSD-before-excluded verdict: only for a run that grokked, with both times known."""
    if not grokked or t_fsd is None or t_excluded is None:
        return None
    return t_fsd < t_excluded


def collect_lead_run(run_dir: Path, name: str, seed: int | None) -> dict[str, Any]:
    """One lead run: events from its rows, t_fsd per statistic recomputed from spectra.jsonl with the exact mu0,
    t_excluded from its checkpoints with the final keys (grokmon.offline), and the logged-vs-exact FSD check."""
    status, summary, rows = run_state(run_dir)
    line: dict[str, Any] = {"name": name, "run_dir": str(run_dir), "status": status, "done": status == "completed",
                            "last_step": rows[-1]["step"] if rows else None}
    if not (run_dir / "config.json").is_file():
        return {**line, "p": None, "seed": seed, "weight_decay": None}
    cfg = read_config(run_dir)
    line.update(p=cfg.task.p, seed=cfg.model.seed if seed is None else seed, weight_decay=cfg.optim.weight_decay)
    if not line["done"]:
        return line  # offline events of a run still going (or stopped) are provisional: not tabulated
    me = cfg.metrics
    logged = run_events(rows, me.alpha)
    t_grok = logged["t_grok"]
    from grokmon.offline import offline_excluded  # torch and the model: only for a finished run

    try:
        ex = offline_excluded(run_dir, rows, cfg=cfg, full=False)
        excluded = {"t_excluded": ex.t_excluded, "key_freqs": list(ex.key_freqs), "excluded_final_step": ex.final_step,
                    "excluded_missing": ex.missing or None, "excluded_checkpoints": ex.n_checkpoints,
                    "excluded_seconds": round(ex.seconds, 1)}
    except GrokmonError as e:
        excluded = {"t_excluded": None, "key_freqs": [], "excluded_final_step": None,
                    "excluded_missing": f"cannot recompute from the checkpoints ({e})", "excluded_checkpoints": 0,
                    "excluded_seconds": None}
    n_key = len(excluded["key_freqs"])
    line.update({k: logged[k] for k in ("t_grok_50", "t_grok", "t_grok_99", "t_excluded_online")})
    line.update(excluded, n_key=n_key, steps=summary.get("steps") if summary else None,
                wall_s=summary.get("wall_s") if summary else None)
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
        ev = fsd_events(probed, series, me.alpha, t_grok)
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
    """Per statistic, over the finished runs: the leads, their mean, the sign test, how many sit inside the
    paper's range, and the FSD-before-excluded verdicts (grokked runs only)."""
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


# ---------------------------------------------------------------------------------------------
# collect precision


def collect_precision(args: argparse.Namespace) -> dict[str, Any]:
    sweeps, runs = [], []
    for d in args.from_:
        plan = sweep_plan(Path(d))
        mine = [precision_run(Path(r["run_dir"]), r["name"], r["seed"], plan["profile"]) for r in plan["runs"]]
        sweeps.append({k: plan[k] for k in ("dir", "profile", "command")} | {"n_planned": len(plan["runs"])}
                      | {"wall": sweep_wall(mine)})
        runs += mine
    done = [r for r in runs if r["done"]]
    groups = []
    for profile in dict.fromkeys(r["profile"] for r in runs):
        for precision in dict.fromkeys(r["precision"] for r in runs if r["profile"] == profile):
            rs = [r for r in done if r["profile"] == profile and r["precision"] == precision]
            groups.append({"profile": profile, "precision": precision, "n_done": len(rs),
                           "n_planned": sum(r["profile"] == profile and r["precision"] == precision for r in runs),
                           "seeds": [r["seed"] for r in rs], "n_grokked": sum(r["t_grok"] is not None for r in rs),
                           "per_seed": {q: {str(r["seed"]): r[q] for r in rs} for q in COMPARED},
                           **{q: spread([r[q] for r in rs]) for q in PRECISION_QUANTITIES}})
    return {"experiment": "precision", **provenance(args), "sweeps": sweeps, "n_planned": len(runs),
            "n_done": len(done),
            "not_done": [{"name": f"{r['profile']}/{r['name']}", "status": r["status"], "last_step": r["last_step"]}
                         for r in runs if not r["done"]],
            "runs": runs, "groups": groups, "rule": SPREAD_RULE,
            "comparisons": [c for p in dict.fromkeys(g["profile"] for g in groups)
                            for c in compare_precisions([g for g in groups if g["profile"] == p])],
            "wall": sweep_wall(runs)}


PRECISION_QUANTITIES = ("t_grok", "t_fsd", "final_val_acc", "min_train_loss", "final_train_loss", "wall_s",
                        "steps_per_s")
COMPARED = ("t_grok", "t_fsd", "final_val_acc")
QUANTITY_LABELS = {"t_grok": "t_grok", "t_fsd": "t_fsd (offline)", "final_val_acc": "final val acc"}
SPREAD_RULE = ("a difference between fp32 and bf16 counts as beyond the seed-to-seed spread when |mean(bf16) - "
               "mean(fp32)| exceeds the larger of the two ranges (max - min over seeds); it needs at least 2 "
               "finished seeds on each side, and a precision where fewer seeds grokked than on the other counts "
               "as a difference in t_grok on its own")


def precision_run(run_dir: Path, name: str, seed: int | None, profile: str | None) -> dict[str, Any]:
    status, summary, rows = run_state(run_dir)
    cfg = read_json(run_dir / "config.json") or {}
    line: dict[str, Any] = {"name": name, "run_dir": str(run_dir), "profile": profile or cfg.get("profile"),
                            "precision": cfg.get("train", {}).get("precision") or name_precision(name),
                            "seed": seed if seed is not None else cfg.get("model", {}).get("seed"),
                            "status": status, "done": status == "completed",
                            "last_step": rows[-1]["step"] if rows else None}
    if not line["done"]:
        return line
    ev = run_events(rows, cfg.get("metrics", {}).get("alpha", 0.05))
    losses = [(r["train_loss"], r["step"]) for r in rows if _num(r.get("train_loss"))]
    low = min(losses) if losses else (None, None)
    wall, steps = summary.get("wall_s"), summary.get("steps")
    line.update({k: ev[k] for k in ("t_grok_50", "t_grok", "t_grok_99", "t_fsd", "t_fsd_online")},
                t_fsd_why=why_missing("t_fsd", rows, ev, running=False) or None,
                final_val_acc=rows[-1].get("val_acc"), min_train_loss=low[0], min_train_loss_step=low[1],
                final_train_loss=rows[-1].get("train_loss"), steps=steps, wall_s=wall,
                steps_per_s=steps / wall if _num(wall) and wall > 0 and _num(steps) else None,
                torch_version=cfg.get("torch_version") or (read_json(run_dir / "run.json") or {}).get("torch_version"),
                fsd_exact_max_diff=logged_fsd_diff(run_dir, rows))
    return line


def logged_fsd_diff(run_dir: Path, rows: Sequence[dict[str, Any]]) -> float | None:
    """The largest |FSD logged - FSD recomputed from spectra.jsonl with the exact mu0| over the probed
    evaluations (the run's own statistic and null draws): 0 up to rounding when the run logged the exact mu0."""
    if not (run_dir / "spectra.jsonl").is_file():
        return None
    cfg = read_config(run_dir)
    me = cfg.metrics
    series = fsd_series(read_jsonl(run_dir / "spectra.jsonl"), cfg.model.seed, me.n_perm, me.fsd_statistic,
                        me.fsd_top_m, me.alpha)
    diffs = [abs(r["fsd"] - series[r["step"]][0]) for r in probed_rows(rows) if r["step"] in series]
    return max(diffs) if diffs else None


def name_precision(name: str) -> str | None:
    """'precisionbf16-s0' -> 'bf16' (a run directory from before config.json carried the key)."""
    return next((p for p in ("fp32", "bf16", "fp64") if f"precision{p}" in name), None)


def compare_precisions(groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """fp32 against bf16 for each compared quantity, by SPREAD_RULE."""
    by = {g["precision"]: g for g in groups}
    if "fp32" not in by or "bf16" not in by:
        return []
    a, b = by["fp32"], by["bf16"]
    paired = {q: {s: y - x for s, x in a["per_seed"][q].items()
                  if (y := b["per_seed"][q].get(s)) is not None and x is not None} for q in COMPARED}
    out = []
    for q in COMPARED:
        x, y = a[q], b[q]
        c = {"profile": a["profile"], "quantity": q, "fp32": x, "bf16": y, "diff": None, "spread": None,
             "beyond_spread": None, "why": "", "paired": paired.get(q, {})}
        rates = [g["n_grokked"] / g["n_done"] for g in (a, b) if g["n_done"]]
        if q == "t_grok" and len(rates) == 2 and rates[0] != rates[1]:
            c.update(beyond_spread=True, why=f"grokked in {a['n_grokked']} of {a['n_done']} fp32 runs and "
                                              f"{b['n_grokked']} of {b['n_done']} bf16 runs")
        if x["n"] >= 2 and y["n"] >= 2:
            c.update(diff=y["mean"] - x["mean"], spread=max(x["range"], y["range"]))
            if c["beyond_spread"] is None:
                c["beyond_spread"] = abs(c["diff"]) > c["spread"]
        elif c["beyond_spread"] is None:
            c["why"] = f"needs a value from 2 seeds on each side (fp32 {x['n']}, bf16 {y['n']})"
        out.append(c)
    return out


# ---------------------------------------------------------------------------------------------
# collect forks


def load_forks(sources: Sequence[str]) -> list[dict[str, Any]]:
    """Fork reports: from a collection file (name -> fork.json content) or fork directories (their fork.json,
    named p{p}-s{seed}-at{step}); a name already taken gets -2, -3, ..."""
    reports: list[dict[str, Any]] = []
    for src in map(Path, sources):
        if src.is_dir():
            report = read_json(src / "fork.json")
            if report is None:
                raise SystemExit(f"{src}: no readable fork.json")
            task = report.get("task", {})
            reports.append({"name": f"p{task.get('p')}-s{task.get('seed')}-at{report['fork_step']}", **report})
        else:
            data = json.loads(src.read_text())
            reports += [{"name": name, **r} for name, r in data.items()]
    seen: dict[str, int] = {}
    for r in reports:
        seen[r["name"]] = seen.get(r["name"], 0) + 1
        if seen[r["name"]] > 1:
            r["name"] = f"{r['name']}-{seen[r['name']]}"
    return reports


def new_stability(branches: Sequence[dict[str, Any]]) -> bool:
    """True when the branches carry the current stability rule's verdicts (fork.json from grokmon fork now)."""
    return bool(branches) and all("stability_window" in b for b in branches)


def fork_roles(reports: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """name -> (role, of): a fork at a step the fork rule chose is the result for its parent; a fork of the
    same parent at a given step is a "variant" of it (a parent forked only at a given step: its result). A fork
    without the current stability verdicts is "superseded" by a rule-chosen fork of the same task and seed
    that has them (the same training run forked again, its branches judged by the rule of docs/metrics.md)."""
    task = lambda r: tuple(sorted(r["task"].items()))  # noqa: E731
    out = {}
    for r in reports:
        newer = [o for o in reports if task(o) == task(r) and o["fork_rule"] != "given step"
                 and new_stability(o["branches"]) and not new_stability(r["branches"])]
        ruled = [o for o in reports if o["run_dir"] == r["run_dir"] and o["fork_rule"] != "given step"]
        if newer:
            out[r["name"]] = ("superseded", newer[0]["name"])
        elif r["fork_rule"] == "given step" and ruled:
            out[r["name"]] = ("variant", ruled[0]["name"])
        else:
            out[r["name"]] = ("result", None)
    return out


BRANCH_KEYS = ("name", "weight_decay", "status", "t_grok", "dt", "last_step", "mem_norm", "min_train_acc",
               "stable", "unstable_reason", "stable_spec", "unstable_reason_spec", "stability_window")


def collect_forks(args: argparse.Namespace) -> dict[str, Any]:
    reports = load_forks(args.from_ or [str(RESULTS / "wd_fork.json")])
    roles = fork_roles(reports)
    forks = []
    for r in reports:
        branches = [{k: b.get(k) for k in BRANCH_KEYS} | {"factor": b["weight_decay"] / r["lambda0"]}
                    for b in r["branches"]]
        applied = new_stability(r["branches"])
        fits = {"all_grokked": fit_section(branches, "all_grokked"),
                "stable": fit_section(branches, "stable") if applied else None}
        old = {}
        if "fit" in r:  # fork.json before the stability rule of docs/metrics.md: its own verdicts and fits
            old = {"changed_rule": r["fit"], "as_first_written": r.get("fit_spec_stability")}
        role, of = roles[r["name"]]
        forks.append({"name": r["name"], "p": r["task"]["p"], "seed": r["task"].get("seed"), "task": r["task"],
                      "lambda0": r["lambda0"], "fork_step": r["fork_step"], "fork_rule": r["fork_rule"],
                      "role": role, "role_of": of, "parent": r["parent"], "after_grok": r.get("after_grok"),
                      "stability_applied": applied, "branches": branches, "fits": fits, "old_fits": old})
    order = {"result": 0, "variant": 1, "superseded": 2}
    forks.sort(key=lambda f: (f["p"], f["seed"] or 0, order[f["role"]], f["fork_step"]))
    return {"experiment": "forks", **provenance(args), "paper": PAPER_FORK, "sources": args.from_ or
            ["docs/results/wd_fork.json"], "lambda_unit": LAMBDA_UNIT, "forks": forks,
            "stability": stability_note(forks), "seed_averaged": seed_groups(reports, forks)}


def stability_note(forks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    missing = [f["name"] for f in forks if not f["stability_applied"] and f["role"] != "superseded"]
    return {"applied_to": [f["name"] for f in forks if f["stability_applied"]], "not_applied_to": missing,
            "why_not": ("the branches' metrics rows are gone (their run directories were deleted); the collected "
                        "fork data keeps only dt and the old rules' verdicts, and the rule of docs/metrics.md "
                        "(stability judged between the fork and the branch's own t_grok, against the pre-fork "
                        "train loss from memorisation on) needs each branch's train accuracy and train loss at "
                        "every evaluation") if missing else ""}


def seed_groups(reports: Sequence[dict[str, Any]], forks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seed-averaged fits (the paper's) over the result forks of one task and lambda0 at 2 or more seeds."""
    role = {f["name"]: f["role"] for f in forks}
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in reports:
        if role[r["name"]] == "result":
            task = tuple(sorted((k, v) for k, v in r["task"].items() if k != "seed"))
            groups.setdefault((task, r["lambda0"]), []).append(r)
    out = []
    for (task, lam0), rs in groups.items():
        if len({r["task"].get("seed") for r in rs}) < 2:
            continue
        rs = sorted(rs, key=lambda r: r["task"].get("seed"))
        per_seed = [next(f for f in forks if f["name"] == r["name"])["fits"]["all_grokked"] for r in rs]
        alphas = [f["power"]["alpha"] for f in per_seed if f["power"]]
        subsets = ["all_grokked"] + (["stable"] if all(new_stability(r["branches"]) for r in rs) else [])
        out.append({"p": dict(task)["p"], "task": dict(task), "lambda0": lam0, "forks": [r["name"] for r in rs],
                    "fits": {s: seed_averaged_fits(rs, s) for s in subsets},
                    "per_seed_alpha": alphas, "per_seed_alpha_spread": spread(alphas)})
    return out


# ---------------------------------------------------------------------------------------------
# render: shared


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def p_text(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def verdict_paragraph(claims: Sequence[tuple[str, bool | None]]) -> list[str]:
    """What reproduces and what does not, from (statement, holds) pairs; None = cannot be judged yet."""
    yes = [s for s, ok in claims if ok is True]
    no = [s for s, ok in claims if ok is False]
    open_ = [s for s, ok in claims if ok is None]
    def group(title: str, items: Sequence[str], none: str) -> list[str]:
        return [f"- {title}: {none}."] if not items else [f"- {title}:"] + [f"  - {x}." for x in items]

    out = group("Reproduces", yes, "nothing yet") + group("Does not reproduce", no, "nothing")
    return out + (group("Cannot be judged from these data", open_, "") if open_ else [])


def header(data: dict[str, Any], title: str, json_name: str) -> list[str]:
    cond = data.get("conditions") or "not recorded"
    return [f"# {title}", "",
            f"Written by `python scripts/results.py render` from [{json_name}]({json_name}), which "
            f"`{data['command']}` collected at commit {data.get('collected_at_commit') or '?'}. "
            f"Runs trained at commit: {data.get('trained_at_commit') or 'not recorded'}. Conditions: {cond}.", ""]


def hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------
# render: lead


def render_lead(data: dict[str, Any], json_name: str) -> str:
    paper, stats = data["paper"], data["statistics"]
    runs = data["runs"]
    lines = header(data, "FSD lead over grokking: the lead table", json_name)
    lines += ["Sweeps:", ""] + [f"    {s['command']}" for s in data["sweeps"]] + [""]
    lines += [f"**{data['n_done']} of {data['n_planned']} runs done.** Every count below is over the finished "
              "runs only." + (" Not finished: " + ", ".join(
                  f"{r['name']} ({r['status']}"
                  + (f", last step {r['last_step']})" if r["last_step"] is not None else ")")
                  for r in data["not_done"]) + "." if data["not_done"] else ""), ""]
    lines += weight_decay_notes(data)
    lines += ["Definitions ([metrics.md](../metrics.md)): t_grok is the first evaluation with val_acc >= 0.95 "
              "(0.5 and 0.99 crossings beside it); t_fsd is the offline FSD ceiling, recomputed here from each "
              "run's stored component spectra with the null's exact mean mu0 (m/K for the top-m overlap, 0 for "
              "Pearson) and the run's own permutation draws; lead = t_grok - t_fsd. t_excluded (final keys) is the "
              "excluded loss's lasting rise with the final checkpoint's key frequencies, recomputed from the "
              "checkpoints; t_excluded (online keys) is the same rule on the excluded loss logged during training. "
              "The FSD-before-excluded verdict is given only for runs that grokked.", ""]
    lines += ["## Summary against the paper", ""]
    head = ["", "runs with a lead", "mean lead", "lead > 0", "two-sided sign test p",
            f"lead inside {LEAD_RANGE[0]}-{LEAD_RANGE[1]}", "FSD before excluded (final keys)",
            "FSD before excluded (online keys)"]
    body = [["paper", paper["n"], paper["mean_lead"], f"{paper['n_positive']}/{paper['n']}",
             f"~{paper['sign_test_p']}", "all (their range)", "{}/{}".format(*paper["fsd_before_excluded"]), "-"]]
    for st in stats:
        s = data["summary"][st["key"]]
        body.append([st["label"], s["n_leads"], fmt_cell(s["mean_lead"], ".0f"),
                     f"{s['n_positive']}/{s['sign_test_n']}", p_text(s["sign_test_p"]),
                     f"{s['inside_range']}/{s['n_leads']}",
                     f"{s['n_fsd_before_excluded']}/{s['n_verdicts']}",
                     f"{s['n_fsd_before_excluded_online']}/{s['n_verdicts_online']}"])
    lines += table(head, body) + [""]
    lines += [f"The paper's grid is {paper['grid']}. A sign test on n non-zero leads cannot go below p = 2^(1-n) "
              "(two-sided), so it needs 6 or more leads, all of one sign, to reach p < 0.05.", ""]
    lines += ["## What reproduces and what does not", ""] + lead_verdicts(data) + [""]
    lines += ["## Runs", ""]
    lines += table(["run", "p", "seed", "weight decay", "status", "t_grok (0.5 / 0.95 / 0.99)",
                    "t_excluded (final keys)", "t_excluded (online keys)", "key frequencies (final checkpoint)",
                    "steps", "wall time"],
                   [[r["name"], fmt_cell(r["p"]), fmt_cell(r["seed"]), fmt_cell(r["weight_decay"], "g"), r["status"]]
                    + ([f"{fmt_cell(r['t_grok_50'])} / {fmt_cell(r['t_grok'])} / {fmt_cell(r['t_grok_99'])}",
                        fmt_cell(r["t_excluded"]) if not r.get("excluded_missing") else "n/a",
                        fmt_cell(r["t_excluded_online"]), ", ".join(map(str, r["key_freqs"])) or "-",
                        fmt_cell(r["steps"]), fmt_cell(r["wall_s"] and r["wall_s"] / 60, ".0f") + " min"]
                       if r["done"] else ["-"] * 6) for r in runs]) + [""]
    missing = [f"- {r['name']}: t_excluded not computed: {r['excluded_missing']}." for r in runs
               if r["done"] and r.get("excluded_missing")]
    lines += missing + ([""] if missing else [])
    done = [r for r in runs if r["done"]]
    for st in stats:
        lines += [f"## {st['label']}", ""]
        lines += table(["run", "m", "t_grok", "t_fsd (offline)", "t_fsd (online detector)", "lead",
                        "FSD before excluded (final keys)", "FSD before excluded (online keys)"],
                       [[r["name"], fmt_cell(c["m"]), fmt_cell(r["t_grok"]), fmt_cell(c["t_fsd"]),
                         fmt_cell(c["t_fsd_online"]), fmt_cell(c["lead"]), fmt_cell(c["fsd_before_excluded"]),
                         fmt_cell(c["fsd_before_excluded_online"])]
                        for r in done if (c := r["by_statistic"][st["key"]])]) + [""]
        if len(done) < len(runs):
            lines += [f"The {len(runs) - len(done)} runs not finished are listed under Runs above.", ""]
        s = data["summary"][st["key"]]
        lines += [f"Mean lead {fmt_cell(s['mean_lead'], '.0f')} steps over {s['n_leads']} runs with a lead "
                  f"({s['n_done']} done, {s['n_grokked']} grokked); positive in {s['n_positive']} of "
                  f"{s['sign_test_n']} non-zero leads; two-sided sign test p = {p_text(s['sign_test_p'])}; inside "
                  f"{LEAD_RANGE[0]}-{LEAD_RANGE[1]}: {s['inside_range']} of {s['n_leads']}.", ""]
    lines += mu0_section(data) + wall_section(data) + earlier_section(data)
    return "\n".join(lines).rstrip() + "\n"


def weight_decay_notes(data: dict[str, Any]) -> list[str]:
    """Say once which primes ran at a weight decay other than the profile's, and why, if the data say why."""
    out = []
    earlier = (data.get("earlier") or {}).get("by_statistic", {})
    first = next(iter(earlier.values()), [])
    for s in data["sweeps"]:
        wd = [o.split("=", 1)[1] for o in s["overrides"] if o.startswith("optim.weight_decay=")]
        if not wd:
            continue
        primes = sorted({r["p"] for r in data["runs"] if r["sweep"] == s["dir"] and r["p"] is not None})
        text = f"p = {', '.join(map(str, primes))} runs at weight decay {wd[0]} (the other primes at the profile's)."
        for p in primes:
            failed = [e for e in first if e.get("p") == p and e.get("t_grok") is None and str(e.get("wd")) != wd[0]]
            if failed:
                text += (f" This was chosen after seeing data: the earlier seed-0 run of p = {p} at weight decay "
                         f"{failed[0]['wd']:g} did not grok ([below](#earlier-seed-0-runs-not-pooled))")
                text += "; Nanda et al. needed weight decay 5 for p = 53 too." if p == 53 else "."
        out += [text, ""]
    return out


def lead_verdicts(data: dict[str, Any]) -> list[str]:
    paper, out = data["paper"], []
    for st in data["statistics"]:
        s = data["summary"][st["key"]]
        n, lo, hi = s["n_leads"], *LEAD_RANGE
        has = n > 0
        claims = [
            (f"the lead is positive in every run (ours {s['n_positive']} of {s['sign_test_n']}, paper "
             f"{paper['n_positive']}/{paper['n']})", (s["n_positive"] == s["sign_test_n"]) if has else None),
            (f"every lead is inside {lo}-{hi} (ours {s['inside_range']} of {n})",
             (s["inside_range"] == n) if has else None),
            (f"the mean lead is inside {lo}-{hi} (ours {fmt_cell(s['mean_lead'], '.0f')}, paper {paper['mean_lead']})",
             (lo <= s["mean_lead"] <= hi) if has else None),
            (f"the sign test gives p < 0.05 (ours p = {p_text(s['sign_test_p'])} over {n} leads, paper "
             f"~{paper['sign_test_p']})" + ("" if n >= 6 else "; it needs 6 or more leads"),
             (s["sign_test_p"] < 0.05) if has and n >= 6 else None),
            (f"the FSD ceiling comes before the excluded-loss rise (final keys) in every grokked run (ours "
             f"{s['n_fsd_before_excluded']} of {s['n_verdicts']}, paper all)",
             (s["n_fsd_before_excluded"] == s["n_verdicts"]) if s["n_verdicts"] else None),
        ]
        out += [f"**{st['label']}** ({s['n_done']} of {data['n_planned']} runs done):", ""]
        out += verdict_paragraph(claims) + [""]
    return out


def mu0_section(data: dict[str, Any]) -> list[str]:
    rows = [r for r in data["runs"] if r["done"] and "mu0_check" in r]
    if not rows:
        return []
    m = data["mu0"]
    out = ["## FSD with the exact mu0 against FSD as logged", "",
           "The runs logged FSD with the null mean mu0 of their own code; here FSD is recomputed with the exact mu0 "
           "from the same spectra and the same permutation draws (so the p-values must agree exactly).", ""]
    out += table(["run", "statistic", "evaluations compared", "largest |FSD exact - FSD logged|", "at step",
                  "largest |p exact - p logged|", "t_fsd logged", "t_fsd exact", "t_fsd changed",
                  "online detector logged / exact"],
                 [[r["name"], c["statistic"], c["n_evaluations"], fmt_cell(c["max_abs_fsd_diff"], ".2e"),
                   fmt_cell(c["at_step"]), fmt_cell(c["max_abs_p_diff"], ".1e"), fmt_cell(c["t_fsd_logged"]),
                   fmt_cell(c["t_fsd_exact"]), fmt_cell(c["t_fsd_changed"]),
                   f"{fmt_cell(c['t_fsd_online_logged'])} / {fmt_cell(c['t_fsd_online_exact'])}"]
                  for r in rows if (c := r["mu0_check"])])
    out += ["", f"Over {m['n_runs']} runs: FSD moved by at most {fmt_cell(m['max_abs_fsd_diff'], '.2e')}; t_fsd "
                f"changed on {m['n_t_fsd_changed']} of them.", ""]
    return out


def wall_section(data: dict[str, Any]) -> list[str]:
    return ["## Wall time", ""] + wall_lines(data["sweeps"])


def wall_lines(sweeps: Sequence[dict[str, Any]]) -> list[str]:
    """Per sweep: training time summed over its finished runs, and the span of its runs' events."""
    return [f"- {s['dir']}: training time summed over its finished runs {hours(s['wall']['sum_run_wall_s'])}; from "
            f"its first run's start to the last finish or stop in its runs' events {hours(s['wall']['span_s'])} "
            "(pauses before resumed runs included)." for s in sweeps] + [""]


def earlier_section(data: dict[str, Any]) -> list[str]:
    earlier = data.get("earlier")
    if not earlier:
        return []
    out = ["## Earlier seed-0 runs (not pooled)", "",
           f"From [{Path(earlier['source']).name}]({Path(earlier['source']).name}), made by the script this page "
           "replaces. Their run directories are gone, so they cannot be recomputed: FSD there used a simulated mu0 "
           "and t_excluded the logged excluded loss (online keys). They are shown for reference and are not in any "
           "count above.", ""]
    for label, rows in earlier["by_statistic"].items():
        leads = [r["lead"] for r in rows if r["lead"] is not None]
        k, n, p = sign_test(leads)
        out += [f"{label}:", ""]
        out += table(["run", "p", "seed", "weight decay", "t_grok", "t_fsd (simulated mu0)", "t_excluded (online keys)",
                      "lead", "FSD before excluded (online keys, as recorded)"],
                     [[r["run"], r["p"], r["seed"], fmt_cell(r["wd"], "g"), fmt_cell(r["t_grok"]), fmt_cell(r["t_fsd"]),
                       fmt_cell(r["t_excluded"]), fmt_cell(r["lead"]),
                       fmt_cell(r["fsd_before_excluded"]) + (" (did not grok)" if r["t_grok"] is None else "")]
                      for r in rows])
        out += ["", f"Positive in {k} of {n}; two-sided sign test p = {p_text(p if leads else None)}.", ""]
    first = next(iter(earlier["by_statistic"].values()), [])
    new = {(r["p"], r["seed"], r["weight_decay"]): r for r in data["runs"] if r["done"]}
    both = [(e, new[key]) for e in first if (key := (e["p"], e["seed"], e["wd"])) in new]
    if both:
        out += ["Runs in both sets (same p, seed and weight decay), earlier / now, first statistic: " + "; ".join(
            f"{e['run']}: t_grok {fmt_cell(e['t_grok'])} / {fmt_cell(r['t_grok'])}, t_fsd {fmt_cell(e['t_fsd'])} / "
            f"{fmt_cell(r['by_statistic'][STATISTICS[0][0]]['t_fsd'])}, t_excluded (online keys) "
            f"{fmt_cell(e['t_excluded'])} / {fmt_cell(r['t_excluded_online'])}" for e, r in both) + ".", ""]
    return out


# ---------------------------------------------------------------------------------------------
# render: forks


def fit_cells(fit: dict[str, Any] | None) -> list[str]:
    """C, R^2, monotone, alpha [CI], intercept a / C / R^2 of one fit section (law_fits keys)."""
    if not fit or not fit["n"]:
        return ["-"] * 6
    pw, ic = fit["power"], fit["intercept"]
    alpha = "-" if pw is None else f"{pw['alpha']:.2f}" + (
        f" [{pw['alpha_ci95'][0]:.2f}, {pw['alpha_ci95'][1]:.2f}]" if pw["alpha_ci95"] else " (no CI: 2 points)")
    inter = "-" if ic is None else f"a = {ic['a']:.0f}, C = {ic['C']:.0f}, R^2 {fmt_cell(ic['r2'], '.3f')}"
    return [f"{fit['C']:.0f}", fmt_cell(fit["r2"], ".3f"), fmt_cell(fit["monotone"]), alpha, inter,
            fmt_cell(fit.get("mem_norm_cv"), ".3f")]


R_SUBSETS = {"all_grokked": "all grokked", "stable": "stable (metrics.md)"}
FIT_HEAD = ["C (steps x weight decay)", "R^2 of dt = C/lambda", "dt strictly falling", "alpha [95 % CI]",
            "dt = a + C/lambda", "CV of memorisation norm"]


def render_forks(data: dict[str, Any], json_name: str) -> str:
    paper, forks = data["paper"], data["forks"]
    lines = header(data, "Weight-decay forks: does dt follow 1/lambda?", json_name)
    lines += [f"Input: {', '.join(data['sources'])} (the forks' fork.json contents). Every fit is recomputed here "
              "with grokmon.metrics.forkfit from each branch's weight decay and dt. lambda is the "
              f"{data['lambda_unit']}.", "",
              f"Paper: R^2 {paper['r2_range'][0]}-{paper['r2_range'][1]} on {paper['r2_on']} for p in "
              f"{{{', '.join(map(str, paper['primes']))}}}; the 1/lambda law means alpha = {paper['alpha']:g} in "
              "dt = C * lambda^-alpha. Our per-run R^2 is a different quantity from the paper's: one fork, one "
              "seed.", ""]
    st = data["stability"]
    if st["not_applied_to"]:
        lines += [f"**Stability not judged.** The stability rule of [metrics.md](../metrics.md) could not be applied "
                  f"to {', '.join(st['not_applied_to'])}: {st['why_not']}. For those forks no fit over the stable "
                  "branches is given, only the fit over every branch that grokked. Beside it are the verdicts the "
                  "forks recorded under the old rules: the rule as first written, and the rule it was changed to "
                  "after seeing these forks (changed to admit the unchanged control branch).", ""]
    results = [f for f in forks if f["role"] == "result"]
    variants = [f for f in forks if f["role"] == "variant"]
    superseded = [f for f in forks if f["role"] == "superseded"]
    def row(f: dict[str, Any]) -> list[Any]:
        rule = f["fork_rule"] + ("; the parent's online FSD detector step"
                                 if f["fork_rule"] == "given step" and f["fork_step"] == f["parent"].get("t_fsd_online")
                                 else "")
        return [f["p"], fmt_cell(f["seed"]), f"{f['lambda0']:g}", f"{f['fork_step']} ({rule})",
                fmt_cell(f["parent"].get("t_grok")), f"{f['fits']['all_grokked']['n']} of {len(f['branches'])}",
                *fit_cells(f["fits"]["all_grokked"])]

    head = ["p", "seed", "lambda0", "fork step (rule)", "parent t_grok", "branches that grokked", *FIT_HEAD[:1],
            "per-run R^2 of dt = C/lambda", *FIT_HEAD[2:]]
    lines += ["## Forks at the rule's fork point (the results)", ""] + table(head, map(row, results)) + [""]
    if variants:
        lines += ["## Variants (not the result)", "",
                  "A re-fork of the same parent at a given step, chosen after seeing the fork at the rule's point; "
                  "shown for comparison only.", ""] + table(head, map(row, variants)) + [""]
    judged = [f for f in results + variants if f["stability_applied"]]
    if judged:
        lines += ["## Fits over the stable branches", "",
                  "Stability as [metrics.md](../metrics.md) defines it: judged between the fork and the branch's own "
                  "t_grok, against the median pre-fork train loss from memorisation on.", ""]
        lines += table(["fork", "role", "stable branches that grokked", *FIT_HEAD],
                       [[f["name"], f["role"], f"{f['fits']['stable']['n']} of {len(f['branches'])}",
                         *fit_cells(f["fits"]["stable"])] for f in judged]) + [""]
    if superseded:
        lines += ["## Earlier forks of the same runs (superseded, not scored)", "",
                  "Forks of the same task and seed from before the stability rule of metrics.md, replaced by a fork "
                  "whose branches it judged.", ""] + table(head, map(row, superseded)) + [""]
    if any(f["old_fits"] for f in forks):
        lines += ["## The old stability rules' fits (as recorded, not recomputed)", ""]
        lines += table(["fork", "role", "R^2 over grokked branches (new fit)", "old rule (changed after seeing data): "
                        "R^2 (branches fitted)", "rule as first written: R^2 (branches fitted)"],
                       [[f["name"], f["role"], fmt_cell(f["fits"]["all_grokked"]["r2"], ".3f")] +
                        [f"{fmt_cell(o['r2'], '.3f')} ({o['n_fit']})" if (o := f["old_fits"].get(k)) else "-"
                         for k in ("changed_rule", "as_first_written")] for f in forks if f["old_fits"]]) + [""]
    lines += seed_section(data) + ["## What reproduces and what does not", ""] + fork_verdicts(data) + [""]
    lines += ["## Branches", ""]
    for f in forks:
        label = "result" if f["role"] == "result" else f"{f['role']}: see {f['role_of']}"
        lines += [f"{f['name']} (p = {f['p']}, seed {fmt_cell(f['seed'])}, lambda0 {f['lambda0']:g}, fork at step "
                  f"{f['fork_step']}, {f['fork_rule']}; {label}):", ""] + branch_table(f) + [""]
    return "\n".join(lines).rstrip() + "\n"


def branch_table(f: dict[str, Any]) -> list[str]:
    """One fork's branches: with the stability verdicts of metrics.md where the fork has them, else the old
    rules' verdicts as recorded."""
    head = ["lambda", "lambda / lambda0", "status", "t_grok", "dt", "in the all-grokked fit", "memorisation norm"]
    common = lambda b: [f"{b['weight_decay']:g}", f"{b['factor']:g}", b["status"], fmt_cell(b["t_grok"]),  # noqa: E731
                        fmt_cell(b["dt"]), "yes" if exclusion_reason(b, "all_grokked") is None else "no",
                        fmt_cell(b["mem_norm"], ".2f")]
    if f["stability_applied"]:
        return table(head + ["stable (metrics.md)", "judged over steps", "min train acc there"],
                     [common(b) + [fmt_cell(b["stable"]) + (f" ({why})" if (why := b["unstable_reason"]) else ""),
                                   "-" if not b["stability_window"] else "{}-{}".format(*b["stability_window"]),
                                   fmt_cell(b["min_train_acc"], ".3f")] for b in f["branches"]])
    return table(head + ["min train acc after the fork (old record)", "stable (old rule, changed)",
                         "stable (old rule, as first written)"],
                 [common(b) + [fmt_cell(b["min_train_acc"], ".3f"), fmt_cell(b["stable"]),
                               fmt_cell(b.get("stable_spec"))] for b in f["branches"]])


def seed_section(data: dict[str, Any]) -> list[str]:
    groups = data["seed_averaged"]
    if not groups:
        return ["## Seed-averaged fits", "", "No task was forked at two or more seeds.", ""]
    out = ["## Seed-averaged fits (the paper's kind)", "",
           "For each lambda / lambda0, dt averaged over the seeds whose branch grokked; a factor is kept only where "
           "every seed's branch grokked. Error bars: the sample standard deviation over seeds (sd) and "
           "sd / sqrt(n).", ""]
    for g in groups:
        fit = g["fits"]["all_grokked"]
        out += [f"p = {g['p']}, lambda0 {g['lambda0']:g}, seeds {', '.join(map(str, fit['seeds']))} "
                f"(forks {', '.join(g['forks'])}):", ""]
        out += table(["lambda / lambda0", "lambda", "dt per seed", "mean dt", "sd", "sd / sqrt(n)"],
                     [[f"{p['factor']:g}", f"{p['weight_decay']:g}", ", ".join(str(int(d)) for d in p["dts"]),
                       f"{p['mean_dt']:.0f}", fmt_cell(p["sd"], ".0f"), fmt_cell(p["se"], ".0f")]
                      for p in fit["points"]])
        dropped = "; ".join(f"{d['factor']:g} (no dt for seed {', '.join(map(str, d['seeds']))})"
                            for d in fit["dropped"])
        out += ["", f"Factors left out: {dropped or 'none'}.", ""]
        out += table(["subset", "factors", *FIT_HEAD[:1], "seed-averaged R^2 of dt = C/lambda", *FIT_HEAD[2:5]],
                     [[R_SUBSETS[k], v["n"], *fit_cells(v)[:5]] for k, v in g["fits"].items()])
        if "stable" not in g["fits"]:
            out += ["", "No stable-subset fit: not every fork here has the stability verdicts of metrics.md."]
        a = g["per_seed_alpha_spread"]
        out += ["", f"alpha fitted per seed (each over its own grokked branches): "
                    f"{', '.join(f'{x:.2f}' for x in g['per_seed_alpha'])}; mean {fmt_cell(a['mean'], '.2f')}, "
                    f"sd {fmt_cell(a['sd'], '.2f')}.", ""]
    return out


def fork_verdicts(data: dict[str, Any]) -> list[str]:
    lo = data["paper"]["r2_range"][0]
    claims: list[tuple[str, bool | None]] = []
    for g in data["seed_averaged"]:
        fit = g["fits"]["all_grokked"]
        if "stable" in g["fits"] and g["fits"]["stable"]["n"]:
            claims.append(alpha_claim(f"p = {g['p']}, seed-averaged over stable branches",
                                      g["fits"]["stable"]["power"]))
        claims.append((f"p = {g['p']}, seed-averaged: R^2 at least the paper's lowest {lo} (ours "
                       f"{fmt_cell(fit['r2'], '.3f')} over {fit['n']} factors)",
                       None if fit["r2"] is None else fit["r2"] >= lo))
        claims.append(alpha_claim(f"p = {g['p']}, seed-averaged", fit["power"]))
        claims.append((f"p = {g['p']}, seed-averaged: dt falls strictly as lambda rises",
                       fit["monotone"] if fit["n"] else None))
    averaged = {g["p"] for g in data["seed_averaged"]}
    for f in (f for f in data["forks"] if f["role"] == "result"):
        fit, name = f["fits"]["all_grokked"], f"{f['name']}"
        if f["p"] not in averaged:
            claims.append((f"{name}: per-run R^2 at least {lo} (ours {fmt_cell(fit['r2'], '.3f')}; one seed only, "
                           "while the paper's range is for seed-averaged dt)",
                           None if fit["r2"] is None else fit["r2"] >= lo))
        claims.append(alpha_claim(name, fit["power"]))
        claims.append((f"{name}: dt falls strictly as lambda rises", fit["monotone"] if fit["n"] else None))
        failed = [b for b in f["branches"] if b["dt"] is None]
        if failed:
            claims.append((f"{name}: every branch groks, as a finite dt = C/lambda needs (ours: not at lambda "
                           f"{', '.join(format(b['weight_decay'], 'g') for b in failed)}; lowest train acc after the "
                           f"fork {', '.join(fmt_cell(b['min_train_acc'], '.2f') for b in failed)})", False))
    missing = [p for p in data["paper"]["primes"] if p not in averaged]
    if missing:
        claims.append((f"seed-averaged fits for p = {', '.join(map(str, missing))} (forked at one seed only)", None))
    if data["stability"]["not_applied_to"] and not any(f["stability_applied"] for f in data["forks"]):
        claims.append(("a fit over the stable branches (stability cannot be judged without the branches' rows)", None))
    cvs = [f["fits"]["all_grokked"]["mem_norm_cv"] for f in data["forks"] if f["role"] == "result"]
    cvs = [c for c in cvs if c is not None]
    note = [f"- Memorisation norm at t_grok: its CV over the grokked branches of each result fork is "
            f"{min(cvs):.3f}-{max(cvs):.3f} (the paper: near-constant; it gives no threshold, so this is not "
            "scored)."] if cvs else []
    return verdict_paragraph(claims) + note


def alpha_claim(name: str, pw: dict[str, Any] | None) -> tuple[str, bool | None]:
    """Whether the free exponent's 95 % interval includes the 1/lambda law's alpha = 1."""
    if pw is None or pw["alpha_ci95"] is None:
        return (f"{name}: alpha = 1 inside the exponent's 95 % CI (no interval: too few points)", None)
    lo, hi = pw["alpha_ci95"]
    inside = lo - 1e-9 <= 1.0 <= hi + 1e-9  # exact data give a zero-width interval at 1 up to rounding
    return (f"{name}: alpha = 1 inside the exponent's 95 % CI (ours alpha {pw['alpha']:.2f}, CI [{lo:.2f}, {hi:.2f}])",
            inside)


# ---------------------------------------------------------------------------------------------
# render: precision


def render_precision(data: dict[str, Any], json_name: str) -> str:
    lines = header(data, "Training precision: fp32 against bf16", json_name)
    lines += ["Sweeps:", ""] + [f"    {s['command']}" for s in data["sweeps"]] + [""]
    lines += [f"**{data['n_done']} of {data['n_planned']} planned runs done.**" + (
        " Not finished: " + ", ".join(f"{r['name']} ({r['status']})" for r in data["not_done"]) + "."
        if data["not_done"] else ""), ""]
    diffs = [r["fsd_exact_max_diff"] for r in data["runs"] if r["done"] and r.get("fsd_exact_max_diff") is not None]
    lines += ["bf16 runs the matrix products under autocast with fp32 master weights, optimiser state, loss and "
              "metrics. t_fsd is the offline FSD ceiling on the FSD the runs logged" + (
                  f" (recomputed from their stored spectra with the exact mu0, it differs by at most "
                  f"{max(diffs):.1e} over {len(diffs)} runs)" if diffs else "")
              + ". The train-loss floor is the lowest train loss over the run (where softmax collapse would show) "
              "beside the final one. Wall times come from runs that shared two cores with other sweeps: compare "
              "them only within one sweep.", ""]
    lines += ["## Runs", ""]
    lines += table(["profile", "precision", "seed", "status", "t_grok", "t_fsd", "final val acc",
                    "lowest train loss (step)", "final train loss", "steps", "wall time", "steps/s"],
                   [[r["profile"], r["precision"], fmt_cell(r["seed"]), r["status"]] +
                    ([fmt_cell(r["t_grok"]), fmt_cell(r["t_fsd"]), fmt_cell(r["final_val_acc"], ".4f"),
                      f"{fmt_cell(r['min_train_loss'], '.2e')} ({fmt_cell(r['min_train_loss_step'])})",
                      fmt_cell(r["final_train_loss"], ".2e"), fmt_cell(r["steps"]),
                      fmt_cell(r["wall_s"], ".0f") + " s", fmt_cell(r["steps_per_s"], ".2f")]
                     if r["done"] else ["-"] * 8) for r in data["runs"]]) + [""]
    lines += ["## Over seeds", ""]
    def ms(g: dict[str, Any], q: str, spec: str) -> str:
        s = g[q]
        if not s["n"]:
            return "-"
        text = f"{s['mean']:{spec}}" + (f" +- {s['sd']:{spec}} ({s['min']:{spec}} to {s['max']:{spec}})"
                                         if s["sd"] is not None else "")
        return text + (f" [{s['n']} of {g['n_done']} runs have one]" if s["n"] < g["n_done"] else "")
    lines += ["Mean +- sample sd over seeds (min to max).", ""]
    lines += table(["profile", "precision", "finished seeds", "grokked", "t_grok", "t_fsd", "final val acc",
                    "lowest train loss", "steps/s"],
                   [[g["profile"], g["precision"], f"{g['n_done']} of {g['n_planned']}", g["n_grokked"],
                     ms(g, "t_grok", ".0f"), ms(g, "t_fsd", ".0f"), ms(g, "final_val_acc", ".4f"),
                     ms(g, "min_train_loss", ".1e"), ms(g, "steps_per_s", ".2f")] for g in data["groups"]]) + [""]
    lines += wall_lines(data["sweeps"])
    lines += ["## fp32 against bf16", "", f"Rule: {data['rule']}.", ""]
    lines += table(["profile", "quantity", "fp32 mean", "bf16 mean", "bf16 - fp32", "larger range over seeds",
                    "beyond the seed spread", "bf16 - fp32 per seed (same init and split)"],
                   [[c["profile"], QUANTITY_LABELS[c["quantity"]], fmt_cell(c["fp32"]["mean"], ".4g"),
                     fmt_cell(c["bf16"]["mean"], ".4g"),
                     fmt_cell(c["diff"], ".4g"), fmt_cell(c["spread"], ".4g"),
                     fmt_cell(c["beyond_spread"]) + (f" ({c['why']})" if c["why"] else ""),
                     ", ".join(f"s{k}: {v:+.4g}" for k, v in c["paired"].items()) or "-"]
                    for c in data["comparisons"]]) + [""]
    why: dict[str, list[str]] = {}
    for r in data["runs"]:
        if r["done"] and r["t_fsd"] is None and r.get("t_fsd_why"):
            why.setdefault(r["t_fsd_why"], []).append(f"{r['profile']} {r['precision']} s{r['seed']}")
    lines += [f"No t_fsd, {reason}: {', '.join(runs)}." for reason, runs in why.items()] + ([""] if why else [])
    lines += ["## What this says", ""] + precision_verdicts(data) + [""]
    return "\n".join(lines).rstrip() + "\n"


def precision_verdicts(data: dict[str, Any]) -> list[str]:
    out = []
    profiles = list(dict.fromkeys(g["profile"] for g in data["groups"]))
    for profile in profiles:
        cs = {c["quantity"]: c for c in data["comparisons"] if c["profile"] == profile}
        groups = [g for g in data["groups"] if g["profile"] == profile]
        done = ", ".join(f"{g['precision']} {g['n_done']} of {g['n_planned']}" for g in groups)
        t = cs.get("t_grok")
        if t is None or t["beyond_spread"] is None:
            why = t["why"] if t else "needs both fp32 and bf16 runs"
            out.append(f"- {profile} (finished: {done}): no verdict yet ({why}).")
            continue
        floors = ", ".join(f"{g['precision']} {fmt_cell(g['min_train_loss']['min'], '.1e')} to "
                           f"{fmt_cell(g['min_train_loss']['max'], '.1e')}" for g in groups)
        if t["beyond_spread"]:
            verdict = "bf16 changes grokking beyond the seed-to-seed spread"
        else:
            verdict = "bf16 does not change grokking beyond the seed-to-seed spread"
        detail = t["why"] or (f"mean t_grok {t['fp32']['mean']:.0f} (fp32) against {t['bf16']['mean']:.0f} (bf16), a "
                              f"difference of {t['diff']:+.0f} steps against a range over seeds of {t['spread']:.0f}")
        pairs = ", ".join(f"s{k} {v:+.0f}" for k, v in t["paired"].items())
        out.append(f"- {profile} (finished: {done}): {verdict}: {detail}. Paired by seed (same init and split), bf16 "
                   f"- fp32 t_grok: {pairs or '-'}. Lowest train loss over seeds: {floors}.")
    return out or ["- No runs yet."]


# ---------------------------------------------------------------------------------------------
# the verbs


RENDERERS = {"lead": render_lead, "forks": render_forks, "precision": render_precision}
COLLECTORS = {"lead": collect_lead, "forks": collect_forks, "precision": collect_precision}


def render(names: Sequence[str], directory: Path, require_all: bool) -> list[Path]:
    """Write the page of each experiment whose JSON (a file in `directory` with that "experiment") exists."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.json")):
        data = read_json(path)
        kind = data.get("experiment") if data else None
        if kind in RENDERERS:
            if kind in found:
                raise SystemExit(f"two JSON files for {kind}: {found[kind].name} and {path.name}")
            found[kind] = path
    wanted = list(names) or list(RENDERERS)
    lacking = [k for k in wanted if k not in found]
    if lacking and (require_all or names):
        raise SystemExit(f"no JSON in {directory} for: {', '.join(lacking)} (run `collect` first)")
    written = []
    for kind in (k for k in wanted if k in found):
        page = directory / f"{PAGES[kind]}.md"
        page.write_text(RENDERERS[kind](json.loads(found[kind].read_text()), found[kind].name))
        print(f"wrote {page}")
        written.append(page)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    c = sub.add_parser("collect", help="read runs, write docs/results/<experiment>.json")
    c.add_argument("experiment", choices=list(COLLECTORS))
    c.add_argument("--from", dest="from_", nargs="+", default=None,
                   help="lead / precision: sweep directories; forks: wd_fork.json or fork directories")
    c.add_argument("--out", type=Path, help="default docs/results/{fsd_lead,wd_fork_fits,precision}.json")
    c.add_argument("--commit", help="the commit the runs were trained at")
    c.add_argument("--conditions", default="", help="threads, machine load: recorded and shown on the page")
    c.add_argument("--earlier", type=Path, help="lead: an earlier lead table's JSON, shown apart and not pooled")
    r = sub.add_parser("render", help="write the pages from docs/results/*.json")
    r.add_argument("pages", nargs="*", metavar="{lead,forks,precision}", help="default: every page with JSON")
    r.add_argument("--all", action="store_true", help="fail unless every page's JSON is there")
    r.add_argument("--dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.verb == "render":
        unknown = [p for p in args.pages if p not in RENDERERS]
        if unknown:
            ap.error(f"unknown page {unknown[0]!r}: expected one of {', '.join(RENDERERS)}")
        render(args.pages, args.dir, args.all)
        return
    if args.experiment != "forks" and not args.from_:
        ap.error(f"collect {args.experiment} needs --from SWEEP_DIR ...")
    write_json(args.out or RESULTS / OUTPUTS[args.experiment], COLLECTORS[args.experiment](args))


if __name__ == "__main__":
    main()
