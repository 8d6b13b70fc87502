"""`grokmon fork`: branch a run at its FSD ceiling (or a step) into runs differing only in weight decay, judge
each branch's stability and fit dt against lambda (docs/metrics.md); writes RUN_DIR/forks/ (a run directory per
branch, fork.json, fork.md). The analysis (analyse_branch, analyse_fork, seed_averaged_fits) is pure."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from grokmon.config import Config
from grokmon.errors import ConfigError
from grokmon.experiments.jobs import JobResult, RunJob, final_status, run_jobs, running_line
from grokmon.interventions import REPLAY_BLOCKERS
from grokmon.metrics.forkfit import (
    DIP_STEPS, SPIKE_FACTOR, branch_stability, coefficient_of_variation, law_fits, seed_average,
)
from grokmon.metrics.grokking import t_grok_of
from grokmon.metrics.runs import run_events
from grokmon.rundir import layout
from grokmon.rundir.readers import checkpoints, load_checkpoint, read_config, read_events, read_json, read_rows
from grokmon.rundir.writer import write_json_atomic

DEFAULT_GRID = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
FORK_POINT = "fork_point.pt"


@dataclass(frozen=True)
class ForkPoint:
    step: int
    rule: str  # how the step was chosen, for fork.json


def parse_wd_list(text: str, source: str = "--wd") -> tuple[float, ...]:
    """'0.5,1,2' -> (0.5, 1.0, 2.0): distinct numbers > 0."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"expected comma-separated numbers > 0, got {part.strip()!r}", source=source) from None
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"expected comma-separated numbers > 0, got {part.strip()!r}", source=source)
        values.append(value)
    if len(set(values)) != len(values):
        raise ConfigError(f"expected distinct values, got {text!r}", source=source)
    return tuple(values)


def resolve_fork_step(rows: list[dict[str, Any]], events: dict[str, Any], at: str) -> ForkPoint:
    """--at fsd-ceiling: the offline t_fsd, or the online detector's step when the offline ceiling comes at or
    after t_grok (the base grokked first); --at STEP: that step. Either must be before the base's t_grok."""
    t_grok = events.get("t_grok")
    if at == "fsd-ceiling":
        candidates = [("offline t_fsd", events.get("t_fsd")), ("online FSD detector", events.get("t_fsd_online"))]
        usable = [(rule, s) for rule, s in candidates if s is not None and (t_grok is None or s < t_grok)]
        if not usable:
            found = ", ".join(f"{rule} {s}" for rule, s in candidates if s is not None) or "no FSD ceiling"
            raise ConfigError(f"has no FSD ceiling before t_grok {t_grok} ({found}); give --at STEP",
                              source="--at fsd-ceiling")
        rule, step = usable[0]
        if rule != candidates[0][0]:
            rule += (" (no offline t_fsd)" if events.get("t_fsd") is None
                     else f" (offline t_fsd {events.get('t_fsd')} is not before t_grok {t_grok})")
        return ForkPoint(int(step), rule)
    try:
        step = int(at)
    except ValueError:
        raise ConfigError(f"expected 'fsd-ceiling' or a step number, got {at!r}", source="--at") from None
    last = rows[-1]["step"] if rows else 0
    if not 0 < step <= last:
        raise ConfigError(f"expected a step in 1..{last} (the run's last evaluation), got {step}", source="--at")
    if t_grok is not None and step >= t_grok:
        raise ConfigError(f"step {step} is not before the run's t_grok {t_grok}: the branches would have "
                          "nothing left to grok", source="--at")
    return ForkPoint(step, "given step")


def weight_decay_at(rows: list[dict[str, Any]], step: int, default: float) -> float:
    """lambda0: the weight decay in force at the fork (a manual intervention before it counts)."""
    before = [r for r in rows if r["step"] <= step and isinstance(r.get("weight_decay"), (int, float))]
    return float(before[-1]["weight_decay"]) if before else default


def branch_name(wd: float) -> str:
    return f"wd_{wd:g}"


def fork_point_state(run_dir: Path, cfg: Config, rows: list[dict[str, Any]], step: int, out: Path) -> Path:
    """A full training state at `step`: the run's checkpoint there, or its last checkpoint before it replayed
    to the step (bit-for-bit: the replay is a resume), saved as out/fork_point.pt."""
    import torch

    from grokmon.engine import Engine

    found = checkpoints(run_dir)
    if step in found:
        return found[step]
    target = out / FORK_POINT
    if target.is_file():
        if load_checkpoint(target).step == step:
            return target
    earlier = [s for s in found if s < step]
    if not earlier:
        raise ConfigError(f"has no checkpoint at or before step {step} to fork from", source=str(run_dir))
    base = max(earlier)
    # A checkpoint holds the state before that step's commands; the replay applies none, so a change of
    # weight decay or lr in [base, step) cannot be replayed: refuse rather than fork from a different state.
    changed = [e for e in read_events(run_dir) if e["type"] == "intervention"
               and e.get("name") in REPLAY_BLOCKERS and base <= e["step"] < step]
    if changed:
        e = changed[0]
        raise ConfigError(f"{e['name']} changed at step {e['step']} ({e.get('source')}), after the last checkpoint "
                          f"before step {step} (at {base}); fork at a checkpoint step instead: "
                          f"{', '.join(str(s) for s in sorted(found) if s > e['step'])[:60] or 'none after it'}",
                          source="--at")
    replay = cfg.replace("train", max_steps=step, stop_after_grok=-1, eval_every=10**9)
    replay = replay.replace("metrics", metrics_every=0).replace("schedule", weight_decay="constant")
    engine = Engine(replay, resume_state=load_checkpoint(found[base]))
    result = engine.run()
    if result.status != "completed" or engine.step != step:
        raise ConfigError(f"could not replay from step {base} to {step}: {result.status} {result.error}",
                          source=str(run_dir))
    # The replay ran without the probe: the FSD history and t_grok come from the run's own rows.
    before = [r for r in rows if r["step"] < step]
    state = engine.state().replace(
        fsd_history=tuple((r["step"], float(r["fsd"]), float(r["fsd_p"])) for r in before
                          if isinstance(r.get("fsd"), (int, float)) and isinstance(r.get("fsd_p"), (int, float))),
        t_grok=t_grok_of([r["step"] for r in before], [r.get("val_acc") or 0.0 for r in before]),
        wall_s=float(next((r["wall_s"] for r in rows if r["step"] == step and isinstance(r.get("wall_s"), (int, float))),
                          engine.wall_s)),
    )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (FORK_POINT + ".tmp")
    torch.save(state.to_dict(), tmp)
    os.replace(tmp, target)
    return target


def branch_config(cfg: Config, *, eval_every: int | None, after_grok: int, max_steps: int | None) -> Config:
    """The parent's config for a branch: every evaluation probed (the memorisation norm at t_grok needs
    weight_norm there), no schedule of its own, stop `after_grok` steps after grokking."""
    out = cfg.replace("train", stop_after_grok=after_grok, max_steps=max_steps or cfg.train.max_steps,
                      eval_every=eval_every or cfg.train.eval_every)
    return out.replace("metrics", metrics_every=1).replace("schedule", weight_decay="constant")


# ---------------------------------------------------------------------------------------------
# analysis (pure)


def analyse_branch(fork_step: int, wd: float, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One branch's line of fork.json from its metrics rows (the parent's rows up to the fork included: they
    give the pre-fork loss level)."""
    evals = [r for r in rows if isinstance(r.get("val_acc"), (int, float))]
    after = [r for r in evals if r["step"] >= fork_step]
    t_grok = t_grok_of([r["step"] for r in after], [r["val_acc"] for r in after])
    stab = branch_stability([r["step"] for r in evals], [r["train_acc"] for r in evals],
                            [r["train_loss"] for r in evals], fork_step=fork_step, t_grok=t_grok)
    grok_row = next((r for r in after if r["step"] == t_grok), None)
    norm_sq = grok_row.get("weight_norm") if grok_row else None
    return {
        "weight_decay": wd,
        "t_grok": t_grok,
        "dt": None if t_grok is None else t_grok - fork_step,
        "stable": stab.stable,
        "unstable_reason": "" if stab.stable else stab.reason,
        "stability_note": stab.reason if stab.stable else "",  # what could not be judged on a stable branch
        # judged: evaluations with window[0] < step <= window[1]; window_end says which rule ended it
        "stability_window": list(stab.window) if stab.window else None,
        "window_end": stab.window_end,
        "t_mem": stab.t_mem,  # the parent's memorisation step, the start of the pre-fork level
        "pre_fork_level": stab.pre_fork_level,  # median train loss from t_mem to the fork
        "min_train_acc": stab.min_train_acc,  # in the window
        "max_loss_ratio": stab.max_loss_ratio,  # highest train loss in the window / pre_fork_level
        "dip_steps": stab.dip_steps,  # the longest train-acc dip below 0.99 in the window, in steps
        "spike_steps": stab.spike_steps,  # the longest train-loss excursion above 10x the level in the window
        # ||theta||_2 at t_grok (the probe's weight_norm is the sum of squares)
        "mem_norm": math.sqrt(norm_sq) if isinstance(norm_sq, (int, float)) else None,
        "last_step": rows[-1]["step"] if rows else None,
    }


SUBSETS = ("all_grokked", "stable")  # the fit sections of fork.json, in the order shown
LAMBDA_UNIT = "absolute weight decay, as AdamW applies it, not lambda / lambda0; C in steps x weight decay"


def exclusion_reason(branch: dict[str, Any], subset: str) -> str | None:
    """Why a branch is left out of the `subset` fit ("all_grokked" or "stable"), or None if it is in."""
    if subset not in SUBSETS:
        raise ValueError(f"expected one of {SUBSETS}, got {subset!r}")
    if branch["dt"] is None:
        status = branch.get("status", "completed")
        if branch.get("last_step") is None:  # never trained (not started yet, or nothing written)
            return f"no evaluation yet ({status})"
        return f"did not grok by step {branch.get('last_step')}" + ("" if status == "completed" else f" ({status})")
    if not branch["weight_decay"] > 0:
        return "weight decay 0 has no 1/lambda"
    if subset == "stable" and not branch["stable"]:
        return f"unstable: {branch['unstable_reason']}"
    return None


def fit_section(branches: Sequence[dict[str, Any]], subset: str) -> dict[str, Any]:
    """One fit section of fork.json: the branches in it, those left out and why, the three fits and the CV of
    the memorisation norm over the branches in it."""
    used = [b for b in branches if exclusion_reason(b, subset) is None]
    norms = [b["mem_norm"] for b in used if b["mem_norm"] is not None]
    return {
        "weight_decays": [b["weight_decay"] for b in used],
        "excluded": [{"weight_decay": b["weight_decay"], "name": b.get("name"), "reason": exclusion_reason(b, subset)}
                     for b in branches if b not in used],
        **law_fits([b["weight_decay"] for b in used], [b["dt"] for b in used]),
        "mem_norm_cv": coefficient_of_variation(norms),
    }


def analyse_fork(branches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """fork.json's "fits": the fit over every branch that grokked and over the stable ones (docs/metrics.md)."""
    return {"lambda_unit": LAMBDA_UNIT, **{subset: fit_section(branches, subset) for subset in SUBSETS}}


def seed_averaged_fits(reports: Sequence[dict[str, Any]], subset: str = "all_grokked") -> dict[str, Any]:
    """The paper's fit: several forks (fork.json contents) of one task at different seeds, on one relative grid
    (lambda / lambda0) and one lambda0. dt is averaged over seeds per factor, only where every seed's branch
    is in `subset` (see exclusion_reason); the fits use the absolute lambda = factor x lambda0."""
    if not reports:
        raise ValueError("expected at least one fork")
    lam0s = {r["lambda0"] for r in reports}
    tasks = {tuple(sorted((k, v) for k, v in r.get("task", {}).items() if k != "seed")) for r in reports}
    seeds = [r.get("task", {}).get("seed") for r in reports]
    if len(lam0s) != 1 or len(tasks) != 1 or len(set(seeds)) != len(seeds):
        raise ValueError(f"expected forks of one task at distinct seeds with one lambda0, got lambda0 "
                         f"{sorted(lam0s)}, seeds {seeds}, {len(tasks)} task(s)")
    lam0 = lam0s.pop()
    per_seed = [{round(b["weight_decay"] / lam0, 9): (b["dt"] if exclusion_reason(b, subset) is None else None)
                 for b in r["branches"]} for r in reports]
    avg = seed_average(lam0, per_seed)
    return {
        "subset": subset, "lambda0": lam0, "seeds": seeds, "lambda_unit": LAMBDA_UNIT,
        "points": [{"factor": p.factor, "weight_decay": p.weight_decay, "dts": list(p.dts), "mean_dt": p.mean_dt,
                    "sd": p.sd, "se": p.se} for p in avg.points],
        "dropped": [{"factor": f, "seeds": [seeds[i] for i in missing]} for f, missing in avg.dropped],
        **avg.fits,
    }


# ---------------------------------------------------------------------------------------------
# the verb


def plan_fork(run_dir: Path, *, at: str, wds: Sequence[float], relative: bool, out: Path | None = None,
              eval_every: int | None = None, after_grok: int = 500, max_steps: int | None = None,
              threads: int = 0) -> tuple[dict[str, Any], list[RunJob], Config]:
    """Check the inputs and build the branch jobs (and the fork point state). No branch trains here."""
    if not layout.is_run_dir(run_dir):
        raise ConfigError("not a grokmon run directory (no config.json)", source=str(run_dir))
    run_dir = run_dir.resolve()  # fork.json's paths work from any directory
    cfg = read_config(run_dir)
    rows = read_rows(run_dir)
    if not rows:
        raise ConfigError("has no evaluations yet (metrics.jsonl is empty)", source=str(run_dir))
    events = run_events(rows, cfg.metrics.alpha)
    point = resolve_fork_step(rows, events, at)
    lam0 = weight_decay_at(rows, point.step, cfg.optim.weight_decay)
    if relative and lam0 <= 0:
        raise ConfigError(f"--relative needs a weight decay > 0 at the fork, got {lam0}", source="--relative")
    absolute = [round(w * lam0, 12) if relative else w for w in wds]
    out = out.resolve() if out is not None else run_dir / "forks"
    plan = {
        "run_dir": str(run_dir), "task": cfg.to_dict()["task"], "fork_step": point.step, "fork_rule": point.rule,
        "lambda0": lam0,
        "relative": relative, "grid": list(wds), "weight_decays": absolute,
        "parent": {k: events.get(k) for k in ("t_grok", "t_fsd", "t_fsd_online")},
        "after_grok": after_grok,
    }
    old = read_json(out / "fork.json")
    if old is not None and old.get("fork_step") != point.step:
        raise ConfigError(f"already holds a fork at step {old.get('fork_step')} (this one is at {point.step}); "
                          "move it away or pass --out", source=str(out))
    if max_steps is not None and max_steps <= point.step:
        raise ConfigError(f"expected a step limit after the fork step {point.step}, got {max_steps}",
                          source="--max-steps")
    bcfg = branch_config(cfg, eval_every=eval_every, after_grok=after_grok, max_steps=max_steps)
    # dt is read at the branches' evaluations, so it is known to within branch_eval_every steps
    plan.update(branch_eval_every=bcfg.train.eval_every, branch_max_steps=bcfg.train.max_steps)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".grokmon-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"cannot write the fork directory: {e.strerror or e}", source=str(out)) from None
    state = fork_point_state(run_dir, cfg, rows, point.step, out)
    plan["fork_state"] = str(state)
    jobs = [RunJob(name=branch_name(w), run_dir=str(out / branch_name(w)), config=bcfg.to_dict(),
                   start_state=str(state), start_commands=(("set_weight_decay", w, "fork"),),
                   history_from=str(run_dir), threads=threads) for w in absolute]
    return plan, jobs, bcfg


def collect_fork(plan: dict[str, Any], jobs: Sequence[RunJob], results: Sequence[JobResult]) -> dict[str, Any]:
    """fork.json's content: the plan, one line per branch and the fits."""
    status = {r.name: r.status for r in results}
    branches = []
    for job, wd in zip(jobs, plan["weight_decays"]):
        rows = read_rows(Path(job.run_dir))
        line = analyse_branch(plan["fork_step"], wd, rows)
        line.update(name=job.name, run_dir=job.run_dir, status=final_status(status.get(job.name), Path(job.run_dir)))
        branches.append(line)
    return {**plan, "branches": branches, "fits": analyse_fork(branches)}


def run_fork(run_dir: Path, *, at: str, wds: Sequence[float], relative: bool, out: Path | None = None,
             eval_every: int | None = None, after_grok: int = 500, max_steps: int | None = None, n_jobs: int = 1,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan, run every branch (finished ones are kept), analyse, and write fork.json and fork.md."""
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // n_jobs) if n_jobs > 1 else 0
    plan, jobs, _ = plan_fork(run_dir, at=at, wds=wds, relative=relative, out=out, eval_every=eval_every,
                              after_grok=after_grok, max_steps=max_steps, threads=threads)
    out_dir = out if out is not None else run_dir / "forks"
    log(f"fork of {run_dir} at step {plan['fork_step']} ({plan['fork_rule']}), lambda0 {plan['lambda0']:g}: "
        f"{len(jobs)} branches in {out_dir}")

    def on_done(r: JobResult) -> None:
        grok = f"t_grok {r.t_grok}" if r.t_grok is not None else "no t_grok"
        log(f"  {r.name}: {r.status}, {grok}" + (f" ({r.wall_s:.0f} s)" if r.wall_s else "")
            + (f" - {r.error}" if r.error else ""))

    results = run_jobs(jobs, n_jobs=n_jobs, on_done=on_done,
                       on_tick=lambda running: log("  " + running_line(running)))
    report = collect_fork(plan, jobs, results)
    write_fork(out_dir, report)
    return report


def write_fork(out_dir: Path, report: dict[str, Any]) -> None:
    write_json_atomic(out_dir / "fork.json", report)
    tmp = out_dir / "fork.md.tmp"
    tmp.write_text(fork_markdown(report))
    os.replace(tmp, out_dir / "fork.md")


def fmt_cell(value: Any, spec: str = "") -> str:
    """A table cell: "-" for None, yes/no for booleans, else the value formatted with `spec`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec) if spec else str(value)


def fork_table(report: dict[str, Any]) -> str:
    lines = ["| lambda | status | t_grok | dt | stable | judged over steps | min train acc | max loss ratio "
             "| memorisation norm |", "|---|---|---|---|---|---|---|---|---|"]
    for b in report["branches"]:
        why = b["unstable_reason"] or b.get("stability_note", "")
        stable = fmt_cell(b["stable"]) + (f" ({why})" if why else "")
        window = b.get("stability_window")
        judged = f"after {window[0]} to {window[1]} ({b['window_end']})" if window else "-"
        lines.append(f"| {b['weight_decay']:g} | {b['status']} | {fmt_cell(b['t_grok'])} | {fmt_cell(b['dt'])} | "
                     f"{stable} | {judged} | {fmt_cell(b['min_train_acc'], '.4f')} | "
                     f"{fmt_cell(b['max_loss_ratio'], '.3g')} | {fmt_cell(b['mem_norm'], '.2f')} |")
    return "\n".join(lines)


SUBSET_LABELS = {"all_grokked": "all grokked", "stable": "stable"}


def fit_line(fit: dict[str, Any], label: str) -> str:
    """One fit section as a few '- ' lines: the branches, then each model."""
    left = "; left out: " + ", ".join(f"{e['weight_decay']:g} ({e['reason']})" for e in fit["excluded"]) \
        if fit["excluded"] else ""
    head = f"- {label}: {fit['n']} branch{'' if fit['n'] == 1 else 'es'}{left}"
    if not fit["n"]:
        return head + "; nothing to fit"
    out = [head, f"  - dt = C / lambda: C = {fit['C']:.1f}, R^2 = {fmt_cell(fit['r2'], '.3f')}, "
                 f"dt strictly falling with lambda: {fmt_cell(fit['monotone'])}"]
    pw, ic = fit["power"], fit["intercept"]
    if pw is not None:
        ci = pw["alpha_ci95"]
        out.append(f"  - dt = C * lambda^-alpha: alpha = {pw['alpha']:.3f}"
                   + (f" (95 % CI {ci[0]:.3f} to {ci[1]:.3f})" if ci else " (no CI with 2 points)")
                   + f", C = {pw['C']:.1f}, R^2 of log dt = {fmt_cell(pw['r2_log'], '.3f')}")
    if ic is not None:
        out.append(f"  - dt = a + C / lambda: a = {ic['a']:.1f}, C = {ic['C']:.1f}, R^2 = {fmt_cell(ic['r2'], '.3f')}")
    out.append(f"  - CV of the memorisation norm: {fmt_cell(fit['mem_norm_cv'], '.3f')}")
    return "\n".join(out)


def fit_lines(report: dict[str, Any]) -> str:
    """Both fit sections: over every branch that grokked, and over the stable ones."""
    fits = report["fits"]
    head = f"Fits, lambda0 = {report['lambda0']:g}. lambda: {fits['lambda_unit']}."
    return "\n".join([head] + [fit_line(fits[s], SUBSET_LABELS[s]) for s in SUBSETS])


def level_line(report: dict[str, Any]) -> str:
    """The pre-fork level the branches are judged against (the same parent rows for every branch)."""
    b = next((b for b in report["branches"] if b.get("pre_fork_level") is not None), None)
    if b is None:
        return "No pre-fork loss level: the parent had not memorised by the fork."
    return (f"Pre-fork level: median train loss {b['pre_fork_level']:.3g} over the parent's evaluations from "
            f"t_mem {b['t_mem']} to the fork.")


def fork_markdown(report: dict[str, Any]) -> str:
    from grokmon.plots import fork_plot

    parent = report["parent"]
    plot = fork_plot(report, width=72, height=18, color=False)
    return "\n".join([
        f"# Weight-decay fork of `{report['run_dir']}`",
        "",
        f"Fork at step {report['fork_step']} ({report['fork_rule']}); lambda0 = {report['lambda0']:g}; "
        f"parent t_grok {fmt_cell(parent.get('t_grok'))}, t_fsd {fmt_cell(parent.get('t_fsd'))}, "
        f"online {fmt_cell(parent.get('t_fsd_online'))}. dt = t_grok(branch) - fork step. {level_line(report)} "
        f"A branch is unstable if, after the fork and up to its own t_grok (to its last evaluation if it did not "
        f"grok), its train acc stays below 0.99, or its train loss stays above {SPIKE_FACTOR:g}x the pre-fork "
        f"level, for {DIP_STEPS} steps or more; the max loss ratio is over that window. Memorisation norm: "
        "||theta||_2 at the branch's t_grok.",
        "",
        fork_table(report),
        "",
        fit_lines(report),
        "",
        "```",
        plot.rstrip(),
        "```",
        "",
    ])
