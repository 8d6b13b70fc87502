"""RunSet: the runs of the compare view. Finds run directories (folders with config.json) under watched folders,
follows each run's metrics, events, summary and owner in bounded memory and bounded time per poll, and says
which config values differ between the runs. No Textual, no plotting: the compare app reads it."""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from grokmon import interventions
from grokmon.events import Command
from grokmon.tui.state import note_request
from grokmon.metrics.grokking import GrokClock, lead, t_grok_of
from grokmon.metrics.runs import run_events
from grokmon.rundir import layout
from grokmon.rundir.lock import run_state
from grokmon.rundir.readers import JsonlFollower, read_json, read_summary
from grokmon.rundir.records import RUN_EVENT_KEYS, valid_event, valid_row

# The row keys kept per run: what the overlay plots draw and what run_events needs (t_fsd, lead).
KEPT_KEYS = ("train_acc", "val_acc", "val_loss", "fsd", "fsd_p", "excluded_loss")
MAX_ROWS = 50_000  # per run; past it every second row is dropped (plots downsample to their width anyway)
READ_BYTES = 1 << 20  # one poll reads at most this much of one file: a long run's history loads over a few polls
EVENTS_EVERY_S = 2.0  # run_events is recomputed at most this often per run (it walks every kept row)
STATUS_EVERY_S = 1.0  # summary.json and owner.json are read at most this often per run
SCAN_EVERY_S = 2.0  # watched folders are searched for new runs this often
SCAN_DEPTH = 6  # runs/<sweep>/<run>/forks/wd_x is 4 deep; deeper folders are not searched
DEFAULT_SHOWN = 8  # with more runs than this, only the first ones start visible in the plots
SKIP_DIRS = {layout.CHECKPOINTS, "__pycache__"}


def natural_key(text: str) -> list[Any]:
    """Sort key that orders numbers by value: wd_0.5 < wd_1 < wd_1.5 < wd_10, p53 < p131."""
    parts = re.split(r"(\d+(?:\.\d+)?)", text)
    return [float(p) if i % 2 else p for i, p in enumerate(parts)]


def find_runs(root: Path, max_depth: int = SCAN_DEPTH) -> list[Path]:
    """Run directories at or under root, in natural order, parents before their forks. Hidden folders and
    checkpoints are not searched; an unreadable folder is skipped."""
    root = Path(root)
    out = [root] if layout.is_run_dir(root) else []

    def walk(folder: Path, depth: int) -> None:
        try:
            with os.scandir(folder) as it:
                entries = [e for e in it if not e.name.startswith(".") and e.name not in SKIP_DIRS
                           and e.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for entry in sorted(entries, key=lambda e: natural_key(e.name)):
            path = Path(entry.path)
            if layout.is_run_dir(path):
                out.append(path)
            if depth < max_depth:
                walk(path, depth + 1)

    walk(root, 1)
    return out


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"task": {"p": 53}} -> {"task.p": 53}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def format_config_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


class Columns:
    """A run's kept rows as numeric columns (NaN = null), in step order, at most max_rows of them."""

    def __init__(self, keys: Sequence[str], max_rows: int = MAX_ROWS) -> None:
        self.keys = ("step", *keys)
        self.max_rows = max(8, max_rows)
        self.n = 0
        self._buf = {k: np.full(256, np.nan) for k in self.keys}

    def extend(self, rows: Sequence[dict[str, Any]]) -> bool:
        """Add rows (each with an integer step); a row for a step already kept replaces it and every later one
        (a resumed run rewrote them). True when kept rows were replaced."""
        replaced = False
        batch: list[dict[str, Any]] = []
        last = self._buf["step"][self.n - 1] if self.n else -math.inf
        for row in rows:
            if row["step"] <= last:
                self._append(batch)
                batch = []
                self.truncate(row["step"])
                replaced = True
            batch.append(row)
            last = row["step"]
        self._append(batch)
        return replaced

    def _append(self, rows: list[dict[str, Any]]) -> None:
        """Rows after the last kept one, in step order: written a column at a time (a long history loads fast)."""
        if not rows:
            return
        end = self.n + len(rows)
        while end > len(self._buf["step"]):
            for key, buf in self._buf.items():
                bigger = np.full(2 * len(buf), np.nan)
                bigger[: self.n] = buf[: self.n]
                self._buf[key] = bigger
        self._buf["step"][self.n: end] = [row["step"] for row in rows]
        for key in self.keys[1:]:
            # type(), not isinstance: a bool is not a number here, and this is the loader's inner loop.
            self._buf[key][self.n: end] = [v if type(v) is float or type(v) is int else math.nan
                                           for v in (row.get(key) for row in rows)]
        self.n = end
        while self.n > self.max_rows:
            keep = np.r_[np.arange(0, self.n - 1, 2), self.n - 1]
            for buf in self._buf.values():
                kept = buf[keep]
                buf[:] = np.nan
                buf[: len(keep)] = kept
            self.n = len(keep)

    def truncate(self, step: float) -> None:
        """Forget every kept row at or after step."""
        cut = int(np.searchsorted(self._buf["step"][: self.n], step, side="left"))
        for buf in self._buf.values():
            buf[cut: self.n] = np.nan
        self.n = cut

    def clear(self) -> None:
        self.truncate(-math.inf)

    def column(self, key: str) -> np.ndarray:
        """A read-only view of one column over the kept rows: valid until the next append."""
        view = self._buf[key][: self.n]
        view.flags.writeable = False
        return view

    def rows(self) -> list[dict[str, Any]]:
        """The kept rows as dicts of their finite values (run_events and why_missing read rows)."""
        cols = [self._buf[k][: self.n].tolist() for k in self.keys]
        return [{k: (int(v) if k == "step" else v) for k, v in zip(self.keys, values) if v == v}
                for values in zip(*cols)]


class RunTrack:
    """One followed run: its config, kept rows, where it stands (status, liveness), its events (t_grok,
    t_fsd, lead) and what a steering key should scale (the hyperparameters last set)."""

    def __init__(self, path: Path, number: int, *, max_rows: int = MAX_ROWS, read_bytes: int = READ_BYTES) -> None:
        self.path = Path(path)
        self.number = number  # 1, 2, ... in discovery order: the run's glyph, stable while the view is open
        self.name = self.path.name
        self.read_bytes = read_bytes
        self.config: dict[str, Any] | None = None
        self.cols = Columns(KEPT_KEYS, max_rows)
        self._metrics = JsonlFollower(self.path / layout.METRICS, max_bytes=read_bytes)
        self._events = JsonlFollower(self.path / layout.EVENTS, max_bytes=read_bytes)
        self.last_row: dict[str, Any] = {}
        self.step: int | None = None
        self.summary: dict[str, Any] | None = None
        self.status = "waiting"  # run_status: running, completed, stopped, ..., crashed
        self.liveness = "waiting"  # live, finished or dead (rundir.lock.liveness)
        self.events: dict[str, Any] = dict.fromkeys(RUN_EVENT_KEYS)
        self.paused = False
        self.pending_pause: bool | None = None
        self._clock = GrokClock()
        self._interventions: list[tuple[int, str, float]] = []  # (step, name, new) of hyperparameter changes
        self._set: dict[str, float] = {}
        self._pending: dict[str, float] = {}
        self._next_status = 0.0
        self._next_events = 0.0
        self._events_stale = False
        self.backlog = False  # the last poll left unread bytes (a long history loads over several polls)
        self.version = 0  # moves on any change the table shows
        self.data_version = 0  # moves when the kept rows change (the plots redraw)
        # The compare view's choices for this run, kept here so they survive a visit to the single-run view.
        self.shown = True
        self.slot: int | None = None

    # -- following --------------------------------------------------------------------------------

    def poll(self, now: float | None = None) -> bool:
        """Read what was appended (whole lines only) and, when due, the summary, owner and events. True when
        anything shown changed."""
        now = time.monotonic() if now is None else now
        changed = False
        if self.config is None:
            self.config = read_json(self.path / layout.CONFIG)
            changed = self.config is not None
        rows, more = self._read(self._metrics)
        if self._metrics.rewound:  # a resume rewrote metrics.jsonl: read from its start again
            self._reset_rows()
            changed = True
        if rows:
            self._ingest_rows(rows)
            changed = True
        events, more_events = self._read(self._events)
        more = more or more_events
        if self._events.rewound:
            self._interventions, self._set, self.paused = [], {}, False
        for event in events:
            if valid_event(event):
                self._ingest_event(event)
                changed = True
        self.backlog = more
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY_S
            changed |= self.refresh_status()
        if self._events_stale and (now >= self._next_events or self.liveness != "live"):
            started = time.monotonic()
            self._events_stale = False
            changed |= self._compute_events()
            # A long run's rows take a while to walk: keep that under ~2 % of the time between two walks.
            self._next_events = now + max(EVENTS_EVERY_S, 50 * (time.monotonic() - started))
        if changed:
            self.version += 1
        return changed

    def _read(self, follower: JsonlFollower) -> tuple[list[dict[str, Any]], bool]:
        """What a follower has new, and whether its bounded read probably left more (read it again soon)."""
        before = follower.offset
        out = follower.read_new()
        return out, follower.rewound or follower.offset - before >= self.read_bytes // 2

    def refresh_status(self) -> bool:
        """Read summary.json and owner.json now: status and liveness. True when either changed."""
        summary = read_summary(self.path)
        status, state = run_state(self.path, summary)
        changed = (status, state) != (self.status, self.liveness) or summary != self.summary
        if changed:
            self.summary, self.status, self.liveness = summary, status, state
            self._events_stale = True
            if state != "live":
                self._pending.clear()
                self.pending_pause = None
        return changed

    def _reset_rows(self) -> None:
        self.cols.clear()
        self._clock = GrokClock()
        self.last_row = {}
        self.step = None
        self.events = dict.fromkeys(RUN_EVENT_KEYS)
        self._events_stale = True
        self.data_version += 1

    def _ingest_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        valid = [row for row in rows if valid_row(row)]
        if not valid:
            return
        if self.cols.extend(valid):  # a resume replaced kept rows: t_grok again from what is kept now
            self._clock = GrokClock(t_grok_of(self.cols.column("step"), self.cols.column("val_acc")))
            self.step = int(self.cols.column("step")[-1])
        else:
            for row in valid:  # every row, before any thinning of the kept ones: t_grok is exact
                acc = row.get("val_acc")
                if isinstance(acc, (int, float)) and not isinstance(acc, bool):
                    self._clock.observe(row["step"], acc)
            self.step = max(self.step or 0, valid[-1]["step"])
        self.last_row = valid[-1]
        self.data_version += 1
        self._events_stale = True

    def _ingest_event(self, event: dict[str, Any]) -> None:
        kind, step = event["type"], event["step"]
        self.step = step if kind == "resume" or self.step is None else max(self.step, step)
        if kind in ("start", "resume"):
            self.paused = False
            if kind == "resume":  # what the old process did after the checkpoint is not this timeline
                self._interventions = [i for i in self._interventions if i[0] <= step]
                self._set = {name: new for _, name, new in self._interventions}
        elif kind == "intervention":
            name, new = str(event.get("name", "")), event.get("new")
            row = interventions.BY_NAME.get(name)
            if row is not None and row.hyperparameter and isinstance(new, (int, float)) and not isinstance(new, bool):
                self._interventions.append((step, name, float(new)))
                del self._interventions[:-1000]  # bounded: only the last value per name matters
                self._set[name] = float(new)
                self._pending.pop(name, None)
            elif name in ("pause", "resume"):
                self.paused = name == "pause"
                self.pending_pause = None
        elif kind == "alert" and event.get("kind") == "command_rejected":
            self._pending.clear()
            self.pending_pause = None
        elif kind in ("finish", "failed"):
            self.paused = False

    def _compute_events(self) -> bool:
        """t_fsd, lead and the rest: the summary's for an ended run (computed there on every row), else
        run_events on the kept rows, with t_grok from every row read."""
        if self.liveness == "finished" and self.summary is not None:
            events = {k: self.summary.get(k) for k in RUN_EVENT_KEYS}
        else:
            events = run_events(self.cols.rows(), self.alpha)
            events["t_grok"] = self._clock.t_grok
            events["lead"] = lead(events["t_grok"], events["t_fsd"])
        changed = events != self.events
        self.events = events
        return changed

    # -- reading ------------------------------------------------------------------------------------

    @property
    def t_grok(self) -> int | None:
        """The first step with val_acc >= 0.95 among every row read (the summary's rule, followed live)."""
        return self._clock.t_grok

    @property
    def alpha(self) -> float:
        value = _number(self._section("metrics").get("alpha"))
        return value if 0 < value < 1 else 0.05

    @property
    def wd_factor(self) -> float:
        """run.wd_factor: what the scaling keys multiply or divide by (2 when unset)."""
        value = _number(self._section("run").get("wd_factor"))
        return value if value > 1 else 2.0

    def _section(self, name: str) -> dict[str, Any]:
        section = (self.config or {}).get(name)
        return section if isinstance(section, dict) else {}

    def value(self, name: str) -> float | None:
        """A hyperparameter as the run has it now: an intervention newer than the latest row (a row at the
        intervention's step was evaluated before it), else the latest row's, else the config's."""
        newer = [new for step, n, new in self._interventions if n == name and step >= self.last_row.get("step", -1)]
        if newer:
            return newer[-1]
        for source in (self.last_row, self._set, self._section("optim")):
            value = _number(source.get(name))
            if math.isfinite(value):
                return value
        return None

    def target(self, name: str) -> float | None:
        """What a scaling key scales: a request not yet acknowledged, else the value last set by an
        intervention, else the config's (the rows may show a warm-up's scaled lr instead)."""
        for source in (self._pending, self._set, self._section("optim"), self.last_row):
            value = _number(source.get(name))
            if math.isfinite(value):
                return value
        return None

    @property
    def display_status(self) -> str:
        """run_status, with a live run that is paused shown as paused."""
        return "paused" if self.paused and self.liveness == "live" else self.status

    @property
    def target_paused(self) -> bool:
        return self.pending_pause if self.pending_pause is not None else self.paused

    def request(self, cmd: Command) -> None:
        """Note a command sent to the run, so a second key press before its acknowledgement builds on it."""
        note_request(self, cmd)


class RunSet:
    """The compare view's runs: run directories given directly, plus every run found under the folders given
    (searched again every SCAN_EVERY_S, so a sweep's new runs appear). `poll` spends at most about budget_s."""

    def __init__(self, paths: Sequence[Path], *, max_rows: int = MAX_ROWS, read_bytes: int = READ_BYTES,
                 scan_every_s: float = SCAN_EVERY_S) -> None:
        self.fixed: list[Path] = []
        self.roots: list[Path] = []
        for path in paths:
            path = Path(path).expanduser().absolute()
            (self.fixed if layout.is_run_dir(path) else self.roots).append(path)
        self.max_rows, self.read_bytes, self.scan_every_s = max_rows, read_bytes, scan_every_s
        self.tracks: list[RunTrack] = []
        self._by_path: dict[Path, RunTrack] = {}
        self.base = self.roots[0] if self.roots else self.fixed[0].parent if self.fixed else Path.cwd()
        self.version = 0  # moves when runs are added (or renamed by that)
        self.backlog = False
        self._next_scan = 0.0
        self._next_track = 0
        self._diff_cache: tuple[tuple[int, ...], list[tuple[str, tuple[str, ...]]]] | None = None

    def scan(self) -> list[RunTrack]:
        """Look for runs not followed yet; returns the new ones (appended, so numbers stay put)."""
        found = list(self.fixed)
        for root in self.roots:
            found += find_runs(root)
        new = []
        for path in found:
            if path not in self._by_path:
                track = RunTrack(path, len(self.tracks) + 1, max_rows=self.max_rows, read_bytes=self.read_bytes)
                track.shown = sum(t.shown for t in self.tracks) < DEFAULT_SHOWN
                self.tracks.append(track)
                self._by_path[path] = track
                new.append(track)
        if new:
            self._rename()
            self.version += 1
        return new

    def _rename(self) -> None:
        """Short names: each run's path relative to the common parent of the runs' parent folders."""
        parents = {str(t.path.parent) for t in self.tracks}
        self.base = Path(os.path.commonpath(sorted(parents)))
        for track in self.tracks:
            track.name = track.path.relative_to(self.base).as_posix()
            track.version += 1

    def poll(self, budget_s: float = 0.05) -> bool:
        """Search for new runs when due, then poll the runs in turn until the budget is spent (the next poll
        goes on from there). True when anything changed; `backlog` says whether more is waiting."""
        start = time.monotonic()
        changed = False
        if start >= self._next_scan:
            self._next_scan = start + self.scan_every_s
            changed = bool(self.scan())
        n = len(self.tracks)
        backlog = False
        for i in range(n):
            track = self.tracks[(self._next_track + i) % n]
            changed |= track.poll()
            backlog |= track.backlog
            if time.monotonic() - start > budget_s and i < n - 1:
                self._next_track = (self._next_track + i + 1) % n
                backlog = True
                break
        self.backlog = backlog
        return changed

    def get(self, path: Path) -> RunTrack | None:
        return self._by_path.get(Path(path))

    def differing(self) -> list[tuple[str, tuple[str, ...]]]:
        """The config values that differ between the runs, as (column label, values per track): dotted keys;
        keys whose values agree run for run share a column (task/model/train.seed). `description` is left out."""
        key = tuple(id(t.config) for t in self.tracks)
        if self._diff_cache is not None and self._diff_cache[0] == key:
            return self._diff_cache[1]
        flat = [flatten(t.config) if t.config else None for t in self.tracks]
        known = [f for f in flat if f is not None]
        keys: list[str] = []
        for f in known:
            keys += [k for k in f if k not in keys and k != "description"]
        groups: dict[tuple[str, ...], list[str]] = {}
        for k in keys:
            values = tuple(format_config_value(f.get(k)) if f is not None else "" for f in flat)
            if len({v for v, f in zip(values, flat) if f is not None}) > 1:
                groups.setdefault(values, []).append(k)
        out = [(_group_label(names), values) for values, names in groups.items()]
        self._diff_cache = (key, out)
        return out


def _group_label(keys: list[str]) -> str:
    """One label for keys that agree run for run: a shared leaf as task/model/train.seed, else a=b."""
    if len(keys) == 1:
        return keys[0]
    leaves = {k.rpartition(".")[2] for k in keys}
    if len(leaves) == 1:
        return "/".join(k.rpartition(".")[0] for k in keys) + "." + leaves.pop()
    return "=".join(keys)
