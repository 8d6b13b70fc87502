"""`grokmon export`: a run directory (or every run of a fork or sweep directory) as CSV files or TensorBoard
event files, for tools that do not read JSONL. The CSV columns come from the run directory's schema.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from grokmon.errors import ConfigError
from grokmon.rundir import layout
from grokmon.rundir.readers import read_events, read_json, read_jsonl, read_meta, read_rows
from grokmon.rundir.records import METRIC_ROW_KEYS, valid_row

FORMATS = ("csv", "tensorboard")
EXPORT_DIR = "export"  # the default --out, inside the run (or fork / sweep) directory

# metrics.jsonl keys whose values are lists ([[k, share], ...] or [k, ...]): they go to freqs.csv, one line
# per entry, not into metrics.csv's columns.
LIST_ROW_KEYS = ("top_freqs", "wl_top_freqs", "key_freqs")
CSV_COLUMNS = tuple(k for k in METRIC_ROW_KEYS if k not in LIST_ROW_KEYS)
METRICS_CSV, SPECTRA_CSV, FREQS_CSV = "metrics.csv", "spectra.csv", "freqs.csv"
SPECTRA_COLUMNS = ("step", "component", "k", "energy")
FREQS_COLUMNS = ("step", "key", "rank", "k", "share")

# TensorBoard: every scalar metric under a grouped tag (the interface dashboards are built on).
TB_SCALARS = {
    "train_acc": "accuracy/train", "val_acc": "accuracy/val",
    "train_loss": "loss/train", "val_loss": "loss/val",
    "fsd": "fsd/fsd", "fsd_p": "fsd/p_value", "fsd_z": "fsd/z",
    "restricted_loss": "progress/restricted_loss", "excluded_loss": "progress/excluded_loss",
    "gini_embed": "progress/gini_embed", "gini_wl": "progress/gini_wl", "weight_norm": "progress/weight_norm",
    "lr": "hparams/lr", "weight_decay": "hparams/weight_decay",
}
# Row keys that are not TensorBoard scalars: the axis, training time, the FSD test's verdict (fsd/p_value
# carries it) and the phase (a text, written when it changes).
TB_NOT_SCALAR = ("step", "wall_s", "fsd_sync", "phase") + LIST_ROW_KEYS
TB_HINT = "needs the tensorboard extra: pip install 'grokmon[tensorboard]'"


@dataclass(frozen=True)
class Exported:
    run_dir: Path
    out: Path
    files: tuple[str, ...]  # names inside `out`
    n_rows: int


# ---------------------------------------------------------------------------------------------
# which runs, where


def export_targets(path: Path, out: Path | None) -> list[tuple[Path, Path]]:
    """(run directory, its output folder) for a run directory, or for every run of a fork, sweep or other
    folder of runs (each under its own name inside the output folder). Default output: PATH/export/."""
    from grokmon.runindex import find_runs

    path = Path(path)
    base = out if out is not None else path / EXPORT_DIR
    if layout.is_run_dir(path):
        return [(path, base)]
    if not path.is_dir():
        raise ConfigError("not a grokmon run directory (no config.json)", source=str(path))
    runs = [r for r in find_runs(path) if layout.is_run_dir(r)]
    if not runs:
        raise ConfigError("not a grokmon run directory (no config.json) and holds none", source=str(path))
    return [(r, base / r.relative_to(path)) for r in runs]


def export(path: Path, fmt: str, out: Path | None = None,
           on_done: Callable[[Exported], None] | None = None) -> list[Exported]:
    """Export every run of `path` in `fmt`; `on_done` hears of each run as it is written."""
    if fmt not in FORMATS:
        raise ConfigError(f"expected one of {', '.join(FORMATS)}, got {fmt!r}", source="--format")
    writer = write_csv if fmt == "csv" else write_tensorboard
    if fmt == "tensorboard":
        summary_writer()  # the missing extra is a one-line error before anything is written
    done = []
    for run_dir, target in export_targets(path, out):
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the export folder: {e.strerror or e}", source=str(target)) from None
        result = writer(run_dir, target)
        done.append(result)
        if on_done is not None:
            on_done(result)
    return done


# ---------------------------------------------------------------------------------------------
# CSV


def csv_cell(value: Any) -> str:
    """A CSV cell that reads back to the JSON value: empty for null, true/false for booleans, floats as
    Python's shortest round-trip repr (float(cell) equals the JSON number exactly)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)  # not expected in a scalar column; kept readable rather than dropped
    return str(value)


def _write_csv_file(path: Path, header: Iterable[str], lines: Iterable[Iterable[Any]]) -> int:
    """Write a CSV file atomically (a reader never sees half of it); returns the number of data lines."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    n = 0
    for line in lines:
        w.writerow([csv_cell(v) for v in line])
        n += 1
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return n


def metrics_lines(rows: list[dict[str, Any]]) -> Iterable[list[Any]]:
    return ([r.get(k) for k in CSV_COLUMNS] for r in rows)


def spectra_lines(spectra: list[dict[str, Any]]) -> Iterable[tuple[Any, ...]]:
    """Long format: one line per (step, component, k) with the energy at frequency k = 1..K."""
    for rec in spectra:
        for component, energies in rec.items():
            if component == "step" or not isinstance(energies, list):
                continue
            for k, energy in enumerate(energies, start=1):
                yield rec["step"], component, k, energy


def freqs_lines(rows: list[dict[str, Any]]) -> Iterable[tuple[Any, ...]]:
    """Long format: one line per entry of each list-valued key: top_freqs and wl_top_freqs entries are
    [k, share]; key_freqs entries are bare k (share empty). rank counts from 1 in the list's order."""
    for r in rows:
        for key in LIST_ROW_KEYS:
            entries = r.get(key)
            if not isinstance(entries, list):
                continue
            for rank, entry in enumerate(entries, start=1):
                if isinstance(entry, list) and len(entry) == 2:
                    yield r["step"], key, rank, entry[0], entry[1]
                else:
                    yield r["step"], key, rank, entry, None


def write_csv(run_dir: Path, out: Path) -> Exported:
    rows = read_rows(run_dir)
    spectra = [s for s in read_jsonl(run_dir / layout.SPECTRA) if valid_row(s)]
    n = _write_csv_file(out / METRICS_CSV, CSV_COLUMNS, metrics_lines(rows))
    _write_csv_file(out / SPECTRA_CSV, SPECTRA_COLUMNS, spectra_lines(spectra))
    _write_csv_file(out / FREQS_CSV, FREQS_COLUMNS, freqs_lines(rows))
    return Exported(run_dir, out, (METRICS_CSV, SPECTRA_CSV, FREQS_CSV), n)


# ---------------------------------------------------------------------------------------------
# TensorBoard


def summary_writer() -> Any:
    """torch's SummaryWriter class (it writes with the tensorboard package: the optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(TB_HINT, source="--format tensorboard") from None
    return SummaryWriter


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _start_time(run_dir: Path, events: list[dict[str, Any]]) -> float | None:
    """Unix time of the run's first start: wall times in the event files are this plus the training time
    (wall_s), so TensorBoard's relative axis is training time, across resumes too."""
    starts = read_meta(run_dir).get("starts")
    if isinstance(starts, list) and starts and isinstance(starts[0], dict) and _number(starts[0].get("time")):
        return float(starts[0]["time"])
    first = next((e for e in events if _number(e.get("time")) and _number(e.get("wall_s"))), None)
    return float(first["time"]) - float(first["wall_s"]) if first else None


def event_text(e: dict[str, Any]) -> str:
    """One line of markdown for an events.jsonl record."""
    kind = e["type"]
    if kind == "intervention":
        change = f" {e.get('old')} -> {e.get('new')}" if e.get("new") is not None else ""
        return f"**{e.get('name')}**{change} (source {e.get('source')})"
    if kind == "alert":
        return f"alert **{e.get('kind')}**: {e.get('message')}"
    if kind == "finish":
        return f"finish: **{e.get('status')}** ({e.get('reason')})"
    if kind == "failed":
        return f"failed: {e.get('error')}"
    if kind == "checkpoint":
        return f"checkpoint {e.get('path')}"
    return f"{kind} on {e.get('device')}"


def _freqs_text(entries: list[Any]) -> str:
    return ", ".join(f"k={x[0]} ({x[1]:.3f})" if isinstance(x, list) and len(x) == 2 and _number(x[1])
                     else f"k={x}" for x in entries) or "(none)"


def _clear_event_files(out: Path) -> None:
    """A new export replaces the last one: TensorBoard would read both files' points as one run."""
    for f in out.glob("events.out.tfevents.*"):
        f.unlink()


def write_tensorboard(run_dir: Path, out: Path) -> Exported:
    """Scalars under TB_SCALARS' tags, events and interventions as text grouped per step, the top
    frequencies and the phase changes as text, and the config as text at step 0."""
    SummaryWriter = summary_writer()
    rows = read_rows(run_dir)
    events = read_events(run_dir)
    start = _start_time(run_dir, events)
    when = lambda wall_s: None if start is None or not _number(wall_s) else start + float(wall_s)  # noqa: E731
    _clear_event_files(out)
    w = SummaryWriter(log_dir=str(out), max_queue=1000, flush_secs=3600)
    try:
        config = read_json(run_dir / layout.CONFIG)
        if config is not None:
            w.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0, walltime=when(0.0))
        phase = None
        for r in rows:
            t = when(r.get("wall_s"))
            for key, tag in TB_SCALARS.items():
                if _number(r.get(key)):
                    w.add_scalar(tag, float(r[key]), r["step"], walltime=t)
            for key in LIST_ROW_KEYS:
                if isinstance(r.get(key), list):
                    w.add_text(f"freqs/{key}", _freqs_text(r[key]), r["step"], walltime=t)
            if isinstance(r.get("phase"), str) and r["phase"] != phase:
                phase = r["phase"]
                w.add_text("phase", phase, r["step"], walltime=t)
        for tag, selected in (("interventions", [e for e in events if e["type"] == "intervention"]),
                              ("events", [e for e in events if e["type"] != "intervention"])):
            by_step: dict[int, list[dict[str, Any]]] = {}
            for e in selected:
                by_step.setdefault(e["step"], []).append(e)
            for step in sorted(by_step):  # one text per step and tag: a step's events read as one list
                group = by_step[step]
                w.add_text(tag, "\n".join(f"- {event_text(e)}" for e in group), step,
                           walltime=when(group[-1].get("wall_s")))
    finally:
        w.close()
    files = tuple(sorted(f.name for f in out.glob("events.out.tfevents.*")))
    return Exported(run_dir, out, files, len(rows))
