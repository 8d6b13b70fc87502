"""`grokmon sweep`: every combination of --grid values and --seeds as a headless run under one sweep
directory, then sweep.json and sweep.md (t_grok, t_fsd, lead and t_excluded per run; mean lead; sign test).
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from grokmon.config import Config, apply_overrides, load_config
from grokmon.errors import ConfigError
from grokmon.experiments.jobs import JobResult, RunJob, final_status, read_summary, run_jobs, running_line
from grokmon.rundir.readers import read_json
from grokmon.rundir.writer import write_json_atomic
from grokmon.metrics.grokking import sign_test

SEED_KEYS = ("task.seed", "model.seed", "train.seed")  # "seed s" sets the split, the init and the batch order


def parse_grid(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """['task.p=53,71'] -> [('task.p', ['53', '71'])]; values stay text for --set parsing."""
    grid = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"expected section.key=v1,v2,..., got {item!r}", source="--grid")
        key, text = (s.strip() for s in item.split("=", 1))
        values = [v.strip() for v in text.split(",") if v.strip()]
        values = list(dict.fromkeys(values))  # a repeated value is one run (run_sweep says so)
        if not values:
            raise ConfigError(f"expected at least one value, got {item!r}", source="--grid", key=key)
        if key in SEED_KEYS:
            raise ConfigError("seeds come from --seeds", source="--grid", key=key)
        if any(key == k for k, _ in grid):
            raise ConfigError("given twice", source="--grid", key=key)
        grid.append((key, values))
    return grid


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"expected comma-separated integers, got {text!r}", source="--seeds") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"expected distinct integers >= 0, got {text!r}", source="--seeds")
    return seeds


def run_name(point: Sequence[tuple[str, str]], seed: int) -> str:
    """('task.p', '53'), seed 0 -> 'p53-s0'; safe as a directory name."""
    parts = [f"{key.rsplit('.', 1)[-1]}{value}" for key, value in point] + [f"s{seed}"]
    return "-".join(parts).replace("/", "_").replace(" ", "")


def plan_sweep(base: Config, grid: list[tuple[str, list[str]]], seeds: Sequence[int], sweep_dir: Path,
               threads: int = 0) -> tuple[list[RunJob], list[dict[str, Any]]]:
    """One job per grid point and seed of `base` (the profile with --set applied); every config is built
    and validated before anything runs."""
    jobs, meta = [], []
    keys = [k for k, _ in grid]
    for values in itertools.product(*[v for _, v in grid]):
        point = list(zip(keys, values))
        for seed in seeds:
            sets = [f"{k}={v}" for k, v in point] + [f"{k}={seed}" for k in SEED_KEYS]
            cfg = apply_overrides(base, sets, source="--grid")
            name = run_name(point, seed)
            jobs.append(RunJob(name=name, run_dir=str(sweep_dir / name), config=cfg.to_dict(), threads=threads))
            meta.append({"name": name, "point": dict(point), "seed": seed})
    return jobs, meta


def collect_sweep(header: dict[str, Any], jobs: Sequence[RunJob], meta: Sequence[dict[str, Any]],
                  results: Sequence[JobResult], offline: bool = True) -> dict[str, Any]:
    """sweep.json's content: one line per run from its summary.json, the mean lead and the sign test.

    t_excluded (final checkpoint's key frequencies) is the summary's when it carries the offline record,
    else, with `offline`, recomputed from the run's checkpoints (grokmon.offline; seconds per run);
    t_excluded_missing says why it is None when it could not be computed."""
    status = {r.name: r.status for r in results}
    runs = []
    for job, m in zip(jobs, meta):
        summary = read_summary(Path(job.run_dir))
        line = {k: (summary or {}).get(k) for k in ("t_grok", "t_fsd", "t_fsd_online", "t_excluded",
                                                    "t_excluded_online", "lead", "steps", "wall_s")}
        line["t_excluded_missing"] = None
        if summary is not None and offline:
            from grokmon.offline import excluded_record  # torch and the model: only when a run has ended

            record = excluded_record(Path(job.run_dir), summary)
            line["t_excluded"], line["t_excluded_missing"] = record["t_excluded"], record["missing"] or None
        runs.append({**m, "run_dir": job.run_dir, "status": final_status(status.get(job.name), Path(job.run_dir)),
                     **line})
    leads = [r["lead"] for r in runs if isinstance(r["lead"], (int, float))]
    n_pos, n, p = sign_test(leads)
    return {**header, "runs": runs, "n_runs": len(runs),
            "n_grokked": sum(1 for r in runs if r["t_grok"] is not None),
            "mean_lead": sum(leads) / len(leads) if leads else None, "n_leads": len(leads),
            "n_positive": n_pos, "sign_test_n": n, "sign_test_p": p if leads else None}


def sweep_markdown(report: dict[str, Any]) -> str:
    f = lambda v: "-" if v is None else str(v)  # noqa: E731
    keys = list(report["grid"])
    head = ("| run | " + " | ".join(keys) + " | seed | status | t_grok | t_fsd | t_fsd online | lead | "
            "t_excluded | t_excluded online |")
    lines = [f"# Sweep of profile `{report['profile']}`", "",
             f"{report['n_runs']} runs ({report['backend']} backend); {report['n_grokked']} grokked "
             "(val_acc >= 0.95). lead = t_grok - t_fsd (offline FSD ceiling). t_excluded: the excluded loss's "
             "lasting rise with the final checkpoint's key frequencies, recomputed from checkpoints; "
             "t_excluded online: the same rule on the logged excluded_loss (each checkpoint's own keys).", "",
             head, "|" + "---|" * (len(keys) + 9)]
    notes = []
    for r in report["runs"]:
        excluded = f(r.get("t_excluded"))
        if r.get("t_excluded_missing"):
            notes.append(f"- {r['name']}: t_excluded not computed: {r['t_excluded_missing']}.")
            excluded = "n/a"
        lines.append(f"| {r['name']} | " + " | ".join(str(r["point"][k]) for k in keys) +
                     f" | {r['seed']} | {r['status']} | {f(r['t_grok'])} | {f(r['t_fsd'])} | "
                     f"{f(r['t_fsd_online'])} | {f(r['lead'])} | {excluded} | {f(r.get('t_excluded_online'))} |")
    lines += [""] + notes + ([""] if notes else [])
    if report["n_leads"]:
        lines.append(f"Mean lead {report['mean_lead']:.0f} steps over {report['n_leads']} runs; positive in "
                     f"{report['n_positive']} of {report['sign_test_n']} non-zero leads; two-sided sign test "
                     f"p = {report['sign_test_p']:.3g}.")
    else:
        lines.append("No run has a lead (it needs both t_grok and an FSD ceiling).")
    return "\n".join(lines) + "\n"


def run_sweep(profile: str, grid_items: Sequence[str], seeds: Sequence[int], *, out: Path | None,
              overrides: Sequence[str] = (), n_jobs: int = 1, backend: str = "local", address: str | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    grid = parse_grid(grid_items)
    for item, (key, values) in zip(grid_items, grid):
        given = [v.strip() for v in item.split("=", 1)[1].split(",") if v.strip()]
        if len(given) != len(values):
            log(f"grokmon: --grid {key}: duplicate values dropped; sweeping {', '.join(values)}")
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // n_jobs) if (n_jobs > 1 and backend == "local") else (1 if backend == "ray" else 0)
    base = load_config(profile, list(overrides))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    sweep_dir = out if out is not None else Path(base.run.runs_dir) / f"sweep-{base.profile}-{stamp}"
    jobs, meta = plan_sweep(base, grid, seeds, sweep_dir, threads)
    header = {"profile": base.profile, "grid": {k: v for k, v in grid}, "seeds": list(seeds),
              "overrides": list(overrides), "backend": backend, "sweep_dir": str(sweep_dir)}
    old = read_json(sweep_dir / "sweep.json")
    if old is not None and (old.get("grid") != header["grid"] or old.get("seeds") != header["seeds"]
                            or old.get("profile") != header["profile"] or old.get("overrides") != header["overrides"]):
        raise ConfigError("already holds a different sweep (profile, grid, seeds or --set differ); "
                          "choose another --out", source=str(sweep_dir))
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(sweep_dir / "sweep.json", collect_sweep(header, jobs, meta, [], offline=False))  # the plan
    except OSError as e:
        raise ConfigError(f"cannot write the sweep directory: {e.strerror or e}", source=str(sweep_dir)) from None
    log(f"sweep of {base.profile}: {len(jobs)} runs in {sweep_dir} ({backend}"
        + (f", {n_jobs} at a time" if backend == "local" else "") + ")")
    done = [0]

    def on_done(r: JobResult) -> None:
        done[0] += 1
        grok = f"t_grok {r.t_grok}" if r.t_grok is not None else "no t_grok"
        log(f"  [{done[0]}/{len(jobs)}] {r.name}: {r.status}, {grok}" + (f" ({r.wall_s:.0f} s)" if r.wall_s else "")
            + (f" - {r.error}" if r.error else ""))

    results = run_jobs(jobs, n_jobs=n_jobs, backend=backend, address=address, on_done=on_done,
                       on_tick=lambda running: log("  " + running_line(running)))
    report = collect_sweep(header, jobs, meta, results)
    write_json_atomic(sweep_dir / "sweep.json", report)
    (sweep_dir / "sweep.md").write_text(sweep_markdown(report))
    return report

