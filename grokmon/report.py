"""`grokmon report`: a run's events table in the shared vocabulary (with the reason when an event is missing,
provisional while the run goes on) and its plot; a fork's or sweep's table and overlaid plots; --save figures.
Reads run, fork and sweep directories; prints nothing itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grokmon.errors import ConfigError
from grokmon.interventions import BY_NAME
from grokmon.metrics.runs import EVENT_LABELS, run_events, why_missing
from grokmon.rundir.layout import is_run_dir
from grokmon.rundir.lock import run_status
from grokmon.rundir.readers import read_config, read_events, read_json, read_rows, read_summary
from grokmon.rundir.records import ENDED

OFFLINE = ("t_fsd", "t_excluded", "lead")  # decided from the whole run: provisional until it ends


def run_report(run_dir: Path) -> dict[str, Any]:
    """Everything the report shows, as data (also what --json prints). t_excluded (final keys) is the
    summary's for a run that ended, else recomputed from the checkpoints (grokmon.offline)."""
    from grokmon.offline import excluded_record

    cfg = read_config(run_dir)
    rows = read_rows(run_dir)
    summary = read_summary(run_dir)
    status = run_status(run_dir, summary)
    running = status == "running"
    ended = status in ENDED
    excluded = excluded_record(run_dir, summary if ended else None, rows, cfg)
    events = run_events(rows, cfg.metrics.alpha, excluded)
    last = rows[-1] if rows else {}
    why = {k: why_missing(k, rows, events, running=running, metrics_on=cfg.metrics.metrics_every > 0)
           for k in EVENT_LABELS if events.get(k) is None}
    provisional = [k for k in OFFLINE if not ended and events.get(k) is not None]
    interventions = [e for e in read_events(run_dir) if e["type"] == "intervention"
                     and e.get("name") in BY_NAME and BY_NAME[e["name"]].marker is not None]
    return {"run_dir": str(run_dir), "status": status, "steps": last.get("step"), "final": last, **events,
            "missing": why, "provisional": provisional, "config": cfg, "rows": rows,
            "interventions": interventions}


def report_text(report: dict[str, Any]) -> str:
    cfg, rows = report["config"], report["rows"]
    lines = [f"{report['run_dir']}: {cfg.task.op} mod {cfg.task.p}, {cfg.model.n_layers} layer(s), status "
             f"{report['status']}, {len(rows)} evaluations to step {report['steps'] if rows else '-'}"]
    width = max(len(label) for label in EVENT_LABELS.values())
    unfinished = "the run is still training" if report["status"] == "running" else \
        f"the run has not finished ({report['status']})"
    for key, label in EVENT_LABELS.items():
        value = report.get(key)
        if value is None:
            cell = report["missing"].get(key, "-")
        else:
            cell = f"{value:>6}" + (f"  (provisional: {unfinished})" if key in report["provisional"] else "")
        lines.append(f"  {label:<{width}}  {cell}")
    offline = report.get("excluded_offline")
    if offline:
        keys = ", ".join(map(str, offline["key_freqs"])) or "none"
        lines.append(f"  t_excluded: the final checkpoint's (step {offline['final_step']}) key frequencies {keys}, "
                     f"excluded loss recomputed from {offline['n_checkpoints']} checkpoints; t_excluded_online: "
                     "each checkpoint's own keys (metrics.jsonl excluded_loss).")
    if report["provisional"]:
        lines.append("  Offline events use the whole run (t_excluded its latest checkpoint's keys) and can move "
                     "until it ends.")
    return "\n".join(lines) + "\n"


def report_plot(report: dict[str, Any], *, width: int, color: bool) -> str:
    from grokmon.plots import run_plot

    marks = [(report[k], name) for k, name in (("t_fsd", "t_fsd"), ("t_grok", "t_grok")) if report.get(k) is not None]
    for e in report["interventions"]:
        row = BY_NAME[e["name"]]
        marks.append((e["step"], f"{row.marker}: {e['name']} {e.get('new'):g}"))
    return run_plot(report["rows"], marks, width=width, color=color)


# ---------------------------------------------------------------------------------------------
# fork and sweep directories

EXPERIMENT_FILES = {"fork": "fork.json", "sweep": "sweep.json"}
# What a fork.json / sweep.json from another version or a hand edit can throw at the printers.
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def experiment_kind(path: Path) -> str | None:
    """"fork" or "sweep" for a fork or sweep directory (not a run directory itself), else None."""
    if is_run_dir(path):
        return None
    return next((kind for kind, name in EXPERIMENT_FILES.items() if (Path(path) / name).is_file()), None)


def read_experiment(path: Path, kind: str) -> dict[str, Any]:
    data = read_json(Path(path) / EXPERIMENT_FILES[kind])
    if data is None:
        raise ConfigError("not a readable JSON object", source=str(Path(path) / EXPERIMENT_FILES[kind]))
    return data


def _shape_error(path: Path, kind: str, e: Exception) -> ConfigError:
    return ConfigError(f"not a {kind}.json this grokmon can read ({type(e).__name__}: {str(e)[:80]})",
                       source=str(Path(path) / EXPERIMENT_FILES[kind]))


def branch_rows(report: dict[str, Any], fork_dir: Path | None) -> list[tuple[str, float, list[dict[str, Any]]]]:
    """(name, weight decay, metrics rows) per branch of fork.json; a branch is looked for at its recorded
    path, then by its name beside fork.json (a fork directory that was moved or copied)."""
    out = []
    for b in report["branches"]:
        candidates = [Path(b["run_dir"])] if b.get("run_dir") else []
        if fork_dir is not None:
            candidates.append(Path(fork_dir) / b["name"])
        where = next((c for c in candidates if c.is_dir()), None)
        out.append((b["name"], float(b["weight_decay"]), read_rows(where) if where is not None else []))
    return out


def fork_text(report: dict[str, Any], *, plot: bool, width: int = 100, color: bool = False,
              fork_dir: Path | None = None) -> str:
    """A fork's table and fit; with `plot`, dt against 1/lambda and the branches' val_acc overlaid."""
    from grokmon.experiments.fork import fit_lines, fork_table

    parts = [fork_table(report), fit_lines(report)]
    if plot:
        from grokmon.plots import fork_curves_plot, fork_plot

        parts.append(fork_plot(report, width=min(width, 100), height=18, color=color))
        parts.append(fork_curves_plot(branch_rows(report, fork_dir), report["fork_step"], width=min(width, 100),
                                      height=18, color=color))
    return "\n".join(parts) + "\n"


def sweep_text(report: dict[str, Any], *, plot: bool, width: int = 100, color: bool = False) -> str:
    """A sweep's table (sweep.md); with `plot`, each run's lead as a bar (when any run has one)."""
    from grokmon.experiments.sweep import sweep_markdown

    text = sweep_markdown(report)
    if plot and report.get("n_leads"):  # without a lead the table already says so; no empty plot
        from grokmon.plots import sweep_lead_plot

        text += "\n" + sweep_lead_plot(report, width=min(width, 100), color=color) + "\n"
    return text


def experiment_text(path: Path, kind: str, *, plot: bool, width: int = 100, color: bool = False) -> str:
    data = read_experiment(path, kind)
    try:
        if kind == "sweep":
            return sweep_text(data, plot=plot, width=width, color=color)
        return fork_text(data, plot=plot, width=width, color=color, fork_dir=Path(path))
    except _SHAPE_ERRORS as e:
        raise _shape_error(path, kind, e) from None


# ---------------------------------------------------------------------------------------------
# figures (matplotlib)


def save_figure(path: Path, target: Path) -> Path:
    """Draw the figure of a run, fork or sweep directory into `target` (.png, .svg or .pdf)."""
    from grokmon import figures

    figures.check_target(target)  # the file type and the extra, before reading anything
    kind = experiment_kind(path)
    if kind is None:
        if not is_run_dir(path):
            raise ConfigError("not a grokmon run directory (no config.json), fork directory (fork.json) or "
                              "sweep directory (sweep.json)", source=str(path))
        return figures.run_figure(run_report(path), target)
    data = read_experiment(path, kind)
    try:
        return figures.fork_figure(data, target) if kind == "fork" else figures.sweep_figure(data, target)
    except _SHAPE_ERRORS as e:
        raise _shape_error(path, kind, e) from None
