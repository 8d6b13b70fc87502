"""`grokmon ls` and `grokmon diff`: the runs under a folder (one line each, newest first) and what differs
between two runs' configs. Reads without locking; a half-written or broken run gives `?` cells, never an error.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from grokmon.errors import ConfigError
from grokmon.metrics.runs import run_events
from grokmon.rundir import layout
from grokmon.rundir.lock import run_status
from grokmon.rundir.readers import read_json, read_rows, read_summary

# Files a run writes itself: any one of them makes a folder a run (config.json may not be there yet), and the
# newest of their modification times is the run's last write. control.jsonl is left out: others write it.
RUN_FILES = (layout.CONFIG, layout.META, layout.METRICS, layout.SPECTRA, layout.EVENTS, layout.SUMMARY,
             layout.OWNER, layout.LOCK, layout.ERROR_LOG)
COLUMNS = ("name", "profile", "task", "status", "steps", "t_grok", "lead", "age")
UNREADABLE = "?"
# What a reader may meet in a hostile or half-written run directory (wrong JSON types, huge numbers).
_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError)


@dataclass
class RunLine:
    """One run as `grokmon ls` shows it. A field is None when there is nothing yet (no evaluation, not grokked)
    and named in `unreadable` when the file that holds it could not be read."""

    name: str  # relative to the listed folder ("." for the folder itself)
    path: Path
    profile: str | None = None
    task: str | None = None  # "add 59"
    status: str = UNREADABLE  # run_status's word, or "starting" before config.json exists
    steps: int | None = None
    t_grok: int | None = None
    lead: int | None = None
    last_write: float | None = None  # Unix time of the newest file the run wrote
    unreadable: list[str] = field(default_factory=list)

    def cells(self, now: float) -> list[str]:
        def cell(key: str, value: Any) -> str:
            return UNREADABLE if key in self.unreadable else "-" if value is None else str(value)

        return [self.name, cell("profile", self.profile), cell("task", self.task), self.status,
                cell("steps", self.steps), cell("t_grok", self.t_grok), cell("lead", self.lead),
                format_age(None if self.last_write is None else now - self.last_write)]

    def to_json(self, now: float) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "profile": self.profile, "task": self.task,
                "status": self.status, "steps": self.steps, "t_grok": self.t_grok, "lead": self.lead,
                "last_write": self.last_write,
                "age_s": None if self.last_write is None else round(now - self.last_write, 3),
                "unreadable": list(self.unreadable)}


def format_age(seconds: float | None) -> str:
    """12 -> 12s, 200 -> 3m, 7200 -> 2h, 5 days -> 5d; "?" when unknown."""
    if seconds is None:
        return UNREADABLE
    seconds = max(0.0, seconds)  # a clock a little ahead on another host
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def is_run_folder(path: Path) -> bool:
    """A folder that holds any file a run writes (a run that is starting has no config.json yet)."""
    return any((path / name).is_file() for name in RUN_FILES)


def find_runs(top: Path) -> Iterator[Path]:
    """Every run folder at or under `top`: nested ones too (a run's forks/wd_*, a sweep's runs)."""
    for here, dirs, _ in os.walk(top, onerror=lambda e: None, followlinks=False):
        path = Path(here)
        if is_run_folder(path):
            yield path
            if layout.CHECKPOINTS in dirs:
                dirs.remove(layout.CHECKPOINTS)  # checkpoint files, never runs
        dirs.sort()


def last_write(run_dir: Path) -> float | None:
    times = []
    for name in RUN_FILES:
        try:
            times.append((run_dir / name).stat().st_mtime)
        except OSError:
            continue
    return max(times) if times else None


def _task(config: dict[str, Any]) -> str | None:
    task = config.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("op"), str) or not isinstance(task.get("p"), int):
        raise ValueError("no task.op / task.p")
    return f"{task['op']} {task['p']}"


def read_run_line(run_dir: Path, name: str) -> RunLine:
    """The ls line of one run; every part that cannot be read is marked, the rest is still filled in."""
    line = RunLine(name=name, path=run_dir, last_write=last_write(run_dir))
    alpha = 0.05
    has_config = (run_dir / layout.CONFIG).is_file()
    if has_config:
        config = read_json(run_dir / layout.CONFIG)  # not read_config: a broken file still gets a line
        if config is None:
            line.unreadable += ["profile", "task"]
        else:
            profile = config.get("profile")
            if isinstance(profile, str):
                line.profile = profile
            elif profile is not None:
                line.unreadable.append("profile")
            metrics = config.get("metrics")
            given = metrics.get("alpha") if isinstance(metrics, dict) else None
            if isinstance(given, float) and 0 < given < 1:
                alpha = given
            try:
                line.task = _task(config)
            except ValueError:
                line.unreadable.append("task")
    summary = None
    try:
        summary = read_summary(run_dir)
        line.status = run_status(run_dir, summary) if has_config else "starting"
    except _READ_ERRORS:
        line.status = UNREADABLE
    try:
        rows = read_rows(run_dir)
        metrics_path = run_dir / layout.METRICS
        if rows:
            line.steps = rows[-1]["step"]
        elif metrics_path.is_file() and metrics_path.stat().st_size > 0 and b"\n" in metrics_path.read_bytes():
            raise ValueError("metrics.jsonl has no usable row")  # whole lines, none of them a row
        if summary is not None:
            line.t_grok, line.lead = summary.get("t_grok"), summary.get("lead")
        elif rows:  # live or crashed: what the rows say so far
            events = run_events(rows, alpha)
            line.t_grok, line.lead = events["t_grok"], events["lead"]
    except _READ_ERRORS:
        line.unreadable += ["steps", "t_grok", "lead"]
    return line


def list_runs(top: Path) -> list[RunLine]:
    """The runs at or under `top`, newest write first. A missing folder or a file is a ConfigError."""
    top = Path(top)
    if not top.exists():
        raise ConfigError("no such folder", source=str(top))
    if not top.is_dir():
        raise ConfigError("not a folder", source=str(top))
    lines = []
    for run_dir in find_runs(top):
        rel = run_dir.relative_to(top).as_posix()
        lines.append(read_run_line(run_dir, rel))
    lines.sort(key=lambda r: (r.last_write is None, -(r.last_write or 0.0), r.name))
    return lines


def ls_table(lines: list[RunLine], now: float | None = None) -> str:
    """A header and one aligned line per run; numbers right-aligned."""
    now = time.time() if now is None else now
    rows = [[c.upper() for c in COLUMNS]] + [line.cells(now) for line in lines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    right = {"steps", "t_grok", "lead", "age"}
    out = []
    for r in rows:
        cells = [r[i].rjust(widths[i]) if COLUMNS[i] in right else r[i].ljust(widths[i]) for i in range(len(r))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def ls_json(lines: list[RunLine], now: float | None = None) -> str:
    now = time.time() if now is None else now
    return "".join(json.dumps(line.to_json(now)) + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------
# watch: one run, or a compare view


def holds_runs(path: Path) -> bool:
    """A fork or sweep directory, or a folder with run directories in it (what `watch` compares)."""
    path = Path(path)
    if (path / "fork.json").is_file() or (path / "sweep.json").is_file():
        return True
    try:
        return any(child.is_dir() and layout.is_run_dir(child) for child in path.iterdir())
    except OSError:
        return False


def watch_compares(paths: list[Path]) -> bool:
    """Whether `grokmon watch PATHS` opens the compare view: several paths, or one folder that holds runs and
    is not a run itself. One path that is, or will become, a run directory gets the single-run view."""
    if len(paths) != 1:
        return True
    path = paths[0]
    return path.is_dir() and not layout.is_run_dir(path) and not is_run_folder(path) and holds_runs(path)


# ---------------------------------------------------------------------------------------------
# diff

_ABSENT = object()


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1e-3}} -> {'optim.lr': 1e-3}."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _config(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not layout.is_run_dir(run_dir):
        raise ConfigError("not a grokmon run directory (no config.json)", source=str(run_dir))
    config = read_json(run_dir / layout.CONFIG)
    if config is None:
        raise ConfigError("not a readable JSON object", source=str(run_dir / layout.CONFIG))
    return config


def config_diff(a: Path, b: Path) -> tuple[list[tuple[str, Any, Any]], int]:
    """(key, value in a, value in b) for every dotted config key that differs (a key only one run has is
    _ABSENT in the other), and the number of keys that are equal."""
    fa, fb = flatten(_config(a)), flatten(_config(b))
    keys = list(fa) + [k for k in fb if k not in fa]
    differ = [(k, fa.get(k, _ABSENT), fb.get(k, _ABSENT)) for k in keys
              if fa.get(k, _ABSENT) != fb.get(k, _ABSENT) or type(fa.get(k)) is not type(fb.get(k))]
    return differ, len(keys) - len(differ)


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


def diff_text(a: Path, b: Path) -> str:
    """The differing config keys as `key: a -> b`, one line saying how many are equal, and, when the runs
    ended with a different weight decay or lr than their configs say (interventions, fork branches), those."""
    differ, equal = config_diff(a, b)
    lines = [f"{key}: {_show(va)} -> {_show(vb)}" for key, va, vb in differ]
    lines.append(f"{equal} config keys equal, {len(differ)} differ")
    last = [read_rows(Path(p))[-1:] for p in (a, b)]
    if all(last):
        moved = [(k, last[0][0].get(k), last[1][0].get(k)) for k in ("weight_decay", "lr")
                 if last[0][0].get(k) != last[1][0].get(k)]
        if moved:
            lines.append("at the last evaluation (interventions included): "
                         + ", ".join(f"{k} {_show(x)} -> {_show(y)}" for k, x, y in moved))
    return "\n".join(lines) + "\n"
