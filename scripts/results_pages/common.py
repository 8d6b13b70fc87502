"""What every results page shares: provenance, spreads, JSON writing, a sweep's plan, run states and wall
times, and the Markdown helpers. Knows no experiment."""

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

from grokmon.rundir.readers import read_json, read_jsonl, read_rows, read_summary

RESULTS = Path(__file__).resolve().parent.parent.parent / "docs" / "results"


# ---------------------------------------------------------------------------------------------
# collect: provenance, spreads, sweeps


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


def is_number(x: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def spread(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, sample sd (None for one value), min, max and range of the numbers given."""
    xs = [float(v) for v in values if is_number(v)]
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
    return {"sum_run_wall_s": sum(r["wall_s"] for r in runs if r["done"] and is_number(r.get("wall_s"))),
            **run_times(Path(r["run_dir"]) for r in runs)}


def run_times(run_dirs: Iterable[Path]) -> dict[str, Any]:
    """The first start and the last finish over runs (events.jsonl wall-clock times, epoch seconds)."""
    starts, ends = [], []
    for d in run_dirs:
        events = read_jsonl(d / "events.jsonl") if (d / "events.jsonl").is_file() else []
        starts += [e["time"] for e in events if e.get("type") == "start" and is_number(e.get("time"))]
        ends += [e["time"] for e in events if e.get("type") == "finish" and is_number(e.get("time"))]
    first, last = (min(starts) if starts else None), (max(ends) if ends else None)
    return {"first_start": first, "last_finish": last,
            "span_s": last - first if first is not None and last is not None else None}


# ---------------------------------------------------------------------------------------------
# render: Markdown


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def p_text(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def verdict_paragraph(claims: Sequence[tuple[str, bool | None]], *, interim: bool = False) -> list[str]:
    """What reproduces and what does not, from (statement, holds) pairs; None = cannot be judged yet.
    `interim` (a partial grid): every group title says "so far", so no verdict reads as final."""
    yes = [s for s, ok in claims if ok is True]
    no = [s for s, ok in claims if ok is False]
    open_ = [s for s, ok in claims if ok is None]
    so_far = " so far" if interim else ""
    def group(title: str, items: Sequence[str], none: str) -> list[str]:
        return [f"- {title}{so_far}: {none}."] if not items else [f"- {title}{so_far}:"] + [f"  - {x}." for x in items]

    out = group("Reproduces", yes, "nothing" if interim else "nothing yet") + group("Does not reproduce", no, "nothing")
    return out + (group("Cannot be judged from these data", open_, "") if open_ else [])


def header(data: dict[str, Any], title: str, json_name: str) -> list[str]:
    cond = data.get("conditions") or "not recorded"
    return [f"# {title}", "",
            f"Written by `python scripts/results.py render` from [{json_name}]({json_name}), which "
            f"`{data['command']}` collected at commit {data.get('collected_at_commit') or '?'}. "
            f"Runs trained at commit: {data.get('trained_at_commit') or 'not recorded'}. Conditions: {cond}.", ""]


def hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f} h"


def wall_lines(sweeps: Sequence[dict[str, Any]]) -> list[str]:
    """Per sweep: training time summed over its finished runs, and the span of its runs' events."""
    return [f"- {s['dir']}: training time summed over its finished runs {hours(s['wall']['sum_run_wall_s'])}; from "
            f"its first run's start to the last finish or stop in its runs' events {hours(s['wall']['span_s'])} "
            "(pauses before resumed runs included)." for s in sweeps] + [""]
