"""The weight-decay fork experiment's collect step (docs/results/wd_fork_fits.json): fork reports, their roles
and fits (grokmon.experiments.fork). Knows nothing of the page; forks_render.py writes it from that JSON alone."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from grokmon.experiments.fork import LAMBDA_UNIT, fit_section, seed_averaged_fits
from grokmon.rundir.readers import read_json

from .common import RESULTS, provenance, spread
from .lead_collect import LEAD_RANGE

R2_RANGE = (0.89, 0.99)  # the paper's R^2 range on seed-averaged dt

# SPEC section 6 (Sivasankar 2026).
# lead_range: how far before grokking the paper's fork point, FSD saturation, lies (its FSD lead, in steps)
PAPER_FORK = {"r2_range": list(R2_RANGE), "r2_on": "seed-averaged dt", "primes": [53, 97, 131], "alpha": 1.0,
              "lead_range": list(LEAD_RANGE)}



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
    without the current stability verdicts is "superseded" by a rule-chosen fork that has them of the same task
    and seed at the same lambda0 and fork step (the same fork made again, its branches judged by the rule of
    docs/metrics.md); at another step or lambda0 it is another fork and keeps its own role."""
    def same_point(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a["task"] == b["task"] and a["lambda0"] == b["lambda0"] and a["fork_step"] == b["fork_step"]

    out = {}
    for r in reports:
        newer = [o for o in reports if same_point(o, r) and o["fork_rule"] != "given step"
                 and new_stability(o["branches"]) and not new_stability(r["branches"])]
        ruled = [o for o in reports if o["run_dir"] == r["run_dir"] and o["fork_rule"] != "given step"]
        if newer:
            out[r["name"]] = ("superseded", newer[0]["name"])
        elif r["fork_rule"] == "given step" and ruled:
            out[r["name"]] = ("variant", ruled[0]["name"])
        else:
            out[r["name"]] = ("result", None)
    for name, (role, of) in out.items():  # a variant of a superseded fork is a variant of what replaced it
        if role == "variant" and out[of][0] == "superseded":
            out[name] = ("variant", out[of][1])
    return out


BRANCH_KEYS = ("name", "weight_decay", "status", "t_grok", "dt", "last_step", "mem_norm", "min_train_acc",
               "stable", "unstable_reason", "stable_spec", "unstable_reason_spec", "stability_window",
               "stability_note", "window_end", "pre_fork_level", "max_loss_ratio", "dip_steps", "spike_steps")


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
                      "branch_eval_every": r.get("branch_eval_every"), "branch_max_steps": r.get("branch_max_steps"),
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
        seeds = [r["task"].get("seed") for r in rs]
        if len(set(seeds)) < 2:
            continue
        rs = sorted(rs, key=lambda r: r["task"].get("seed"))
        twice = [s for s in sorted(set(seeds)) if seeds.count(s) > 1]
        if twice:  # which of them is the seed's fork is not decided here: no average rather than a crash
            names = [" and ".join(r["name"] for r in rs if r["task"].get("seed") == s) for s in twice]
            out.append({"p": dict(task)["p"], "task": dict(task), "lambda0": lam0, "forks": [r["name"] for r in rs],
                        "skipped": f"forks {'; '.join(names)} are both results at seed {', '.join(map(str, twice))}; "
                                   "the average takes one fork per seed"})
            continue
        per_seed = [next(f for f in forks if f["name"] == r["name"])["fits"]["all_grokked"] for r in rs]
        alphas = [f["power"]["alpha"] for f in per_seed if f["power"]]
        subsets = ["all_grokked"] + (["stable"] if all(new_stability(r["branches"]) for r in rs) else [])
        out.append({"p": dict(task)["p"], "task": dict(task), "lambda0": lam0, "forks": [r["name"] for r in rs],
                    "fits": {s: seed_averaged_fits(rs, s) for s in subsets},
                    "per_seed_alpha": alphas, "per_seed_alpha_spread": spread(alphas)})
    return out
