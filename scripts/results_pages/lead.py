"""The lead experiment (docs/results/fsd_lead.*): collect the lead of t_fsd over t_grok and the
FSD-before-excluded verdicts from a sweep's runs, and render the page from that JSON alone."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from grokmon.errors import GrokmonError
from grokmon.experiments.fork import fmt_cell
from grokmon.metrics.grokking import sign_test
from grokmon.metrics.runs import probed_rows, run_events
from grokmon.rundir.readers import read_config, read_jsonl

from .common import header, p_text, provenance, run_state, sweep_plan, sweep_wall, table, verdict_paragraph, wall_lines
from .exact_fsd import fsd_series, series_events

LEAD_RANGE = (500, 3000)  # the paper's lead range, steps

# SPEC section 5 (Sivasankar 2026; Nanda et al. for p = 53 at weight decay 5).
PAPER_LEAD = {"lead_range": list(LEAD_RANGE), "mean_lead": 1722, "n_positive": 9, "n": 9, "sign_test_p": 0.004,
              "fsd_before_excluded": [9, 9], "grid": "p in {53, 71, 97, 113, 131} x 3 seeds"}

# The four statistics of the lead table: (key, label, statistic, m); m None = the final number of key freqs.
STATISTICS = (("overlap_m5", "top-5 overlap (the default)", "overlap", 5),
              ("overlap_m3", "top-3 overlap", "overlap", 3),
              ("overlap_mkey", "top-m overlap, m = number of key frequencies (final checkpoint)", "overlap", None),
              ("pearson", "Pearson", "pearson", None))


# ---------------------------------------------------------------------------------------------
# collect


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
# render


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
