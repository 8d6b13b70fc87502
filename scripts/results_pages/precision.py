"""The precision experiment (docs/results/precision.*): collect fp32 and bf16 runs over seeds, compare them by
the seed-spread rule, and render the page from that JSON alone."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from grokmon.experiments.fork import fmt_cell
from grokmon.metrics.runs import probed_rows, run_events, why_missing
from grokmon.rundir.readers import read_config, read_json, read_jsonl

from .common import (header, is_number, provenance, run_state, spread, sweep_plan, sweep_wall, table,
                     wall_lines)
from .exact_fsd import fsd_series

PRECISION_QUANTITIES = ("t_grok", "t_fsd", "final_val_acc", "min_train_loss", "final_train_loss", "wall_s",
                        "steps_per_s")
COMPARED = ("t_grok", "t_fsd", "final_val_acc")
QUANTITY_LABELS = {"t_grok": "t_grok", "t_fsd": "t_fsd (offline)", "final_val_acc": "final val acc"}
SPREAD_RULE = ("a difference between fp32 and bf16 counts as beyond the seed-to-seed spread when |mean(bf16) - "
               "mean(fp32)| exceeds the larger of the two ranges (max - min over seeds); it needs at least 2 "
               "finished seeds on each side, and a precision where fewer seeds grokked than on the other counts "
               "as a difference in t_grok on its own")


# ---------------------------------------------------------------------------------------------
# collect


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
    losses = [(r["train_loss"], r["step"]) for r in rows if is_number(r.get("train_loss"))]
    low = min(losses) if losses else (None, None)
    wall, steps = summary.get("wall_s"), summary.get("steps")
    line.update({k: ev[k] for k in ("t_grok_50", "t_grok", "t_grok_99", "t_fsd", "t_fsd_online")},
                t_fsd_why=why_missing("t_fsd", rows, ev, running=False) or None,
                final_val_acc=rows[-1].get("val_acc"), min_train_loss=low[0], min_train_loss_step=low[1],
                final_train_loss=rows[-1].get("train_loss"), steps=steps, wall_s=wall,
                steps_per_s=steps / wall if is_number(wall) and wall > 0 and is_number(steps) else None,
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
# render


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
