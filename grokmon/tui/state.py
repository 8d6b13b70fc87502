"""RunState: what the panels show, folded from metrics rows, events and the config (README "The run directory").

Pure Python and numpy: no Textual, no plotext, no files; which hyperparameters and markers exist comes from the
intervention registry. The app feeds it messages; widgets read it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from grokmon import interventions
from grokmon.events import Command
from grokmon.metrics.grokking import MEMORISED, is_grokked
from grokmon.metrics.runs import run_events, why_missing

KEEP_PROBES = 64  # top-frequency rows kept, so a resumed run's replaced rows can fall back to older ones
EVENT_COLUMNS = ("step", "val_acc", "train_acc", "fsd", "fsd_p", "excluded_loss")  # what run_events reads


@dataclass(frozen=True)
class Intervention:
    step: int
    name: str  # weight_decay, lr, pause, resume, checkpoint, stop
    old: float | None
    new: float | None
    source: str


@dataclass(frozen=True)
class Marker:
    step: int
    kind: str  # "intervention", "detector" (the online FSD detector fired), "fsd" (t_fsd, offline) or "grok"
    label: str
    tag: str  # the letter at the top of its line, so markers read without colour


# The run's own markers: (kind, tag, label, what it means for the help). Interventions take their letters
# from the registry. The online detector and the offline ceiling are different rules: different letters.
EVENT_MARKERS = (
    ("detector", "D", "FSD detector fired (online)",
     "the FSD detector fired: the online rule, as the run went (the engine's alert)"),
    ("fsd", "F", "t_fsd (offline ceiling)",
     "t_fsd: the FSD ceiling by the offline rule over the rows so far (provisional until t_grok)"),
    ("grok", "G", "t_grok", "t_grok: grokked, val accuracy first >= 0.95"),
)


def hyperparameters() -> list[interventions.Intervention]:
    """The registry rows whose value metrics rows carry (weight_decay, lr, ...), in registry order."""
    # The module attribute, read per call: a row patched into the registry (tests) is seen at once.
    return [row for row in interventions.REGISTRY if row.hyperparameter]


def short_name(name: str) -> str:
    """A hyperparameter's name for tight places (status bar, footer): the initials of a multi-word
    name (weight_decay -> wd), else the name itself (lr)."""
    words = [w for w in name.split("_") if w]
    return "".join(w[0] for w in words) if len(words) > 1 else name


def _number(v: Any) -> float:
    """A column value: numbers and bools as float, anything else (None, strings) as NaN."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    return math.nan


def _event_value(key: str, v: Any) -> Any:
    """A row value as metrics.runs reads it: a finite number (the step an int), else None."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return None
    return int(v) if key == "step" else v


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


class RunState:
    """The run as the UI knows it. Rows are kept as numeric columns (NaN = null), bounded by max_rows:
    past that, every second row is dropped (plots downsample to the widget's width anyway).

    Counters let the widgets redraw only on change: `version` moves on any change, `epoch` when kept rows
    were replaced or thinned (not just appended), `probe_version` when new top frequencies arrived.
    """

    def __init__(self, config: dict[str, Any] | None = None, *, max_rows: int = 200_000) -> None:
        self.max_rows = max(4, max_rows)
        self.version = 0
        self.epoch = 0
        self.probe_version = 0
        self._n = 0  # rows kept
        self._buf: dict[str, np.ndarray] = {"step": np.full(1024, np.nan)}  # NaN past _n, always
        self.last_row: dict[str, Any] | None = None
        self.probes: list[dict[str, Any]] = []  # the last KEEP_PROBES rows that carried top_freqs
        self.config: dict[str, Any] = {}
        self.max_steps: int | None = None
        self.precision = "fp32"  # train.precision of the run's config
        self.alpha = 0.05
        self.wd_factor = 2.0
        self.step: int | None = None
        self.wall_s: float | None = None
        self.steps_per_s: float | None = None
        self._values: dict[str, float] = {}  # per hyperparameter name: what the latest row or event says
        self._configured: dict[str, float] = {}  # per hyperparameter name: the config's optim.<name>
        self._set: dict[str, float] = {}  # per hyperparameter name: the last intervention's new value
        self._pending: dict[str, float] = {}  # per hyperparameter name: asked for, not yet acknowledged
        self._hp_step: dict[str, int] = {}  # step of the last intervention per hyperparameter
        self.phase: str | None = None
        self.t_grok: int | None = None
        self.t_fsd_online: int | None = None
        self.interventions: list[Intervention] = []
        self.started = False
        self.paused = False
        self.finished: str | None = None  # the finish event's status (completed, stopped, ...)
        self.finish_reason = ""
        self.error: str | None = None
        self.last_checkpoint: str | None = None
        self.pending_pause: bool | None = None
        self._events_key: tuple[object, ...] | None = None
        self._events: dict[str, Any] = {}
        self._event_rows: list[dict[str, Any]] = []  # the kept rows' EVENT_COLUMNS, for metrics.runs
        if config:
            self.ingest_config(config)

    # -- ingest --------------------------------------------------------------------------------

    def ingest_config(self, config: dict[str, Any]) -> None:
        self.config = dict(config)
        section = lambda name: config.get(name) if isinstance(config.get(name), dict) else {}  # noqa: E731
        self.max_steps = _int(section("train").get("max_steps")) or self.max_steps
        precision = section("train").get("precision")
        self.precision = precision if isinstance(precision, str) and precision else self.precision
        alpha = _number(section("metrics").get("alpha"))
        self.alpha = alpha if 0 < alpha < 1 else self.alpha
        factor = _number(section("run").get("wd_factor"))
        self.wd_factor = factor if factor > 1 else self.wd_factor
        for row in hyperparameters():
            value = _number(section("optim").get(row.name))
            if math.isfinite(value):
                self._configured[row.name] = value
                self._values.setdefault(row.name, value)  # rows and events, when already here, know better
        self.version += 1

    def ingest_row(self, row: dict[str, Any]) -> None:
        """Append one metrics row; a row for a step already kept replaces that row and all after it."""
        step = _int(row.get("step"))
        if step is None:
            return
        replaced = bool(self._n) and step <= self._buf["step"][self._n - 1]
        if replaced:
            self._truncate(step)
        if self._n == len(self._buf["step"]):
            self._grow()
        i = self._n
        self._buf["step"][i] = step
        for key, value in row.items():
            if key in ("step", "phase") or isinstance(value, (list, dict, str)):
                continue
            buf = self._buf.get(key)
            if buf is None:
                buf = self._buf[key] = np.full(len(self._buf["step"]), np.nan)
            buf[i] = _number(value)
        self._n += 1
        self._event_rows.append({k: _event_value(k, row.get(k)) for k in EVENT_COLUMNS})
        if self._n > self.max_rows:
            self._thin()
        self._after_row(step, row, replaced)
        self.version += 1

    def _after_row(self, step: int, row: dict[str, Any], replaced: bool) -> None:
        prev = self.last_row
        self.last_row = row
        # An event may have reported a later step already (a followed run reads two files).
        self.step = step if replaced or self.step is None else max(self.step, step)
        wall = row.get("wall_s")
        if isinstance(wall, (int, float)):
            if prev is not None and isinstance(prev.get("wall_s"), (int, float)) and _int(prev.get("step")) is not None:
                dt, ds = wall - prev["wall_s"], step - prev["step"]
                self.steps_per_s = ds / dt if dt > 0 and ds > 0 else self.steps_per_s
            self.wall_s = float(wall)
        # A row carries the hyperparameters it was trained with, but it may be older than an
        # intervention event that arrived first (a followed run reads two files): keep the event's.
        # (A row at the intervention's own step was evaluated before the change, so only later rows count.)
        for hp in hyperparameters():
            value = row.get(hp.name)
            fresh = step > self._hp_step.get(hp.name, -1)
            if fresh and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._values[hp.name] = float(value)
        if isinstance(row.get("phase"), str):
            self.phase = row["phase"]
        acc = row.get("val_acc")
        if self.t_grok is None and isinstance(acc, (int, float)) and is_grokked(acc):  # the one t_grok rule
            self.t_grok = step
        if row.get("top_freqs") is not None:
            self.probes.append(row)
            del self.probes[:-KEEP_PROBES]
            self.probe_version += 1

    def _truncate(self, step: int) -> None:
        """A resumed run rewrote its metrics: forget every kept row at or after `step`."""
        cut = int(np.searchsorted(self._buf["step"][: self._n], step, side="left"))
        for buf in self._buf.values():
            buf[cut: self._n] = np.nan
        self._n = cut
        del self._event_rows[cut:]
        if self.t_grok is not None and self.t_grok >= step:
            self.t_grok = None
        kept = [p for p in self.probes if p["step"] < step]
        if len(kept) != len(self.probes):
            self.probes = kept
            self.probe_version += 1
        self.last_row = self._row_at(self._n - 1) if self._n else None
        self.steps_per_s = None
        self.epoch += 1

    def _thin(self) -> None:
        """Drop every second row but the last: keeps the whole history's shape in bounded memory."""
        keep = np.r_[np.arange(0, self._n - 1, 2), self._n - 1]
        for buf in self._buf.values():
            kept = buf[keep]
            buf[:] = np.nan
            buf[: len(keep)] = kept
        self._n = len(keep)
        self._event_rows = [self._event_rows[i] for i in keep.tolist()]
        self.epoch += 1

    def _grow(self) -> None:
        """Double every column's buffer (amortised O(1) appends; plots read views, not copies)."""
        for key, buf in self._buf.items():
            bigger = np.full(2 * len(buf), np.nan)
            bigger[: self._n] = buf[: self._n]
            self._buf[key] = bigger

    def _row_at(self, i: int) -> dict[str, Any]:
        row: dict[str, Any] = {k: float(b[i]) for k, b in self._buf.items()}
        row["step"] = int(row["step"])
        return row

    def ingest_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        step = _int(event.get("step"))
        self.started = True  # any event means a trainer is (or was) there
        if step is not None:
            self.step = step if kind == "resume" or self.step is None else max(self.step, step)
        wall = event.get("wall_s")
        if isinstance(wall, (int, float)) and (self.wall_s is None or wall > self.wall_s or kind == "resume"):
            self.wall_s = float(wall)
        if kind in ("start", "resume"):
            self.started, self.paused, self.finished, self.finish_reason, self.error = True, False, None, "", None
            if kind == "resume" and step is not None:
                self._forget_after(step)
        elif kind == "intervention":
            self._intervention(event, step)
        elif kind == "alert":
            if event.get("kind") == "fsd_ceiling" and self.t_fsd_online is None and step is not None:
                self.t_fsd_online = step
            elif event.get("kind") == "command_rejected":
                self._pending.clear()
                self.pending_pause = None
        elif kind == "checkpoint":
            self.last_checkpoint = str(event.get("path", ""))
        elif kind == "finish":
            self.finished = str(event.get("status") or "completed")
            self.finish_reason = str(event.get("reason") or "")
            self._ended()
        elif kind == "failed":
            self.error = str(event.get("error") or "unknown error")
            self._ended()
        self.version += 1

    def _intervention(self, event: dict[str, Any], step: int | None) -> None:
        name = str(event.get("name", ""))
        new = event.get("new")
        new = float(new) if isinstance(new, (int, float)) and not isinstance(new, bool) else None
        old = event.get("old")
        old = float(old) if isinstance(old, (int, float)) and not isinstance(old, bool) else None
        at = step if step is not None else (self.step or 0)
        done = Intervention(at, name, old, new, str(event.get("source", "")))
        # A resumed run replays the value interventions at its checkpoint's step: the same record again.
        if done not in self.interventions:
            self.interventions.append(done)
        row = interventions.BY_NAME.get(name)
        if row is not None and row.hyperparameter and new is not None:
            self._values[name] = self._set[name] = new
            self._hp_step[name] = step if step is not None else (self.step or 0)
            pending = self._pending.get(name)
            if pending is not None and math.isclose(new, pending, rel_tol=1e-9, abs_tol=1e-300):
                del self._pending[name]
        elif name in ("pause", "resume"):  # the run's status, not a value: the status bar and `p` follow it
            self.paused = name == "pause"
            self.pending_pause = None

    def _forget_after(self, step: int) -> None:
        """A resume from the checkpoint at `step`: what the old process did after it is not this timeline."""
        if self._n and self._buf["step"][self._n - 1] > step:
            self._truncate(step + 1)
        self.interventions = [i for i in self.interventions if i.step <= step]
        self._hp_step = {k: v for k, v in self._hp_step.items() if v <= step}
        # The checkpoint holds the values set up to its step: replay the kept interventions over the config.
        hps = {row.name for row in hyperparameters()}
        self._set = {i.name: i.new for i in self.interventions if i.name in hps and i.new is not None}
        if self.t_fsd_online is not None and self.t_fsd_online > step:
            self.t_fsd_online = None
        if self.t_grok is not None and self.t_grok > step:
            self.t_grok = None

    def _ended(self) -> None:
        self.paused = False
        self._pending.clear()
        self.pending_pause = None

    def request(self, cmd: Command) -> None:
        """Note a command sent to the trainer; the value shown changes only when its event comes back."""
        note_request(self, cmd)

    # -- read ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    @property
    def steps(self) -> np.ndarray:
        """The kept rows' steps (float). A read-only view: valid until the next ingest, not to be kept."""
        return self.column("step")

    def column(self, name: str) -> np.ndarray:
        """One metric over the kept rows, aligned with `steps`; NaN where null or never present.
        A read-only view into the buffer (no copy per redraw): valid until the next ingest."""
        buf = self._buf.get(name)
        if buf is None:
            return np.full(self._n, np.nan)
        view = buf[: self._n]
        view.flags.writeable = False
        return view

    def has(self, name: str) -> bool:
        buf = self._buf.get(name)
        return buf is not None and bool(np.isfinite(buf[max(0, self._n - 2000): self._n]).any())

    @property
    def latest_probe(self) -> dict[str, Any] | None:
        return self.probes[-1] if self.probes else None

    @property
    def status(self) -> str:
        """waiting, running, paused, finished or failed."""
        if self.error is not None:
            return "failed"
        if self.finished is not None:
            return "finished"
        if self.paused:
            return "paused"
        return "running" if self.started or self._n else "waiting"

    @property
    def ended(self) -> bool:
        return self.status in ("finished", "failed")

    @property
    def schedule_note(self) -> str | None:
        """The weight-decay schedule, for the status bar: what it will do, or when it did it."""
        sched = self.config.get("schedule") if isinstance(self.config.get("schedule"), dict) else {}
        kind = sched.get("weight_decay", "constant")
        if kind not in ("fsd", "step"):
            return None
        fired = next((i for i in self.interventions if i.source == f"schedule:{kind}"), None)
        if fired is not None:
            return f"schedule {kind}: raised at step {fired.step}"
        when = "at the FSD ceiling" if kind == "fsd" else f"at step {sched.get('at_step')}"
        return f"schedule {kind}: x{format_kappa(sched.get('kappa'))} {when}"

    def value(self, name: str) -> float | None:
        """A hyperparameter as the run last reported it: the latest metrics row's value, or an intervention
        event newer than that row, or (before either) the config's optim.<name>; None when unknown."""
        return self._values.get(name)

    def pending(self, name: str) -> float | None:
        """The value a sent command asked for, until its intervention event (or a rejection) comes back."""
        return self._pending.get(name)

    def target(self, name: str) -> float | None:
        """The value the next scaling key should scale: the pending request's, else the value last set.

        "Last set" is the latest intervention's new value, else the config's: the value the command
        replaces. It can differ from what the rows carry (the lr rows show the warm-up's scaled rate, set_lr
        sets the base rate), so the rows' value is only the fallback when nothing was ever set."""
        for source in (self._pending, self._set, self._configured, self._values):
            if name in source:
                return source[name]
        return None

    @property
    def target_paused(self) -> bool:
        return self.pending_pause if self.pending_pause is not None else self.paused

    @property
    def metrics_on(self) -> bool:
        """Whether the run computes the Fourier metrics (metrics.metrics_every > 0; unknown counts as on)."""
        metrics = self.config.get("metrics") if isinstance(self.config.get("metrics"), dict) else {}
        return metrics.get("metrics_every", 1) != 0

    @property
    def n_perm(self) -> int | None:
        """The permutations behind each FSD p-value (metrics.n_perm), when the config says."""
        metrics = self.config.get("metrics") if isinstance(self.config.get("metrics"), dict) else {}
        return _int(metrics.get("n_perm"))

    def latest(self, name: str) -> float | None:
        """The last finite value of a column (the Fourier keys are null between probes)."""
        col = self.column(name)
        finite = np.flatnonzero(np.isfinite(col))
        return float(col[finite[-1]]) if len(finite) else None

    @property
    def memorised_at(self) -> int | None:
        """The first step with train accuracy >= 0.99 (metrics.grokking.MEMORISED), None before."""
        hit = np.flatnonzero(self.column("train_acc") >= MEMORISED)
        return int(self.steps[hit[0]]) if len(hit) else None

    @property
    def key_freqs(self) -> list[int] | None:
        """The key frequencies of the latest probe (row key key_freqs), None when the rows do not carry them."""
        probe = self.latest_probe
        keys = probe.get("key_freqs") if probe is not None else None
        if not isinstance(keys, list):
            return None
        return [int(k) for k in keys if isinstance(k, (int, float)) and not isinstance(k, bool)]

    def events(self) -> dict[str, Any]:
        """metrics.runs.run_events over the kept rows (t_grok, t_fsd offline, lead, ...), with t_fsd_online
        the engine's own alert: the detector that fired in this run, not a replay. Recomputed only when
        what it reads can have changed: a new probed row, t_grok (the same rule, kept here per row), a
        replaced or thinned history."""
        key = (self.epoch, self.probe_version, self.t_grok, self.alpha, self.t_fsd_online)
        if key != self._events_key:
            self._events_key = key
            self._events = dict(run_events(self._event_rows, self.alpha))
            self._events["t_fsd_online"] = self.t_fsd_online
        return self._events

    def why(self, key: str) -> str:
        """metrics.runs.why_missing for an event of `events()`: "" when it is known."""
        events = self.events()
        return why_missing(key, self._event_rows, events, running=not self.ended, metrics_on=self.metrics_on)

    def markers(self) -> list[Marker]:
        """Vertical lines for the time plots: every intervention whose registry row has a marker letter,
        the FSD detector (online), t_fsd (offline), t_grok."""
        out = []
        for i in self.interventions:
            row = interventions.BY_NAME.get(i.name)
            if row is None or row.marker is None:
                continue
            if row.takes_value and i.new is None:
                continue  # nothing to label it with (a malformed event)
            label = f"{i.name} {i.new:g}" if row.takes_value else (row.past_tense or i.name)
            out.append(Marker(i.step, "intervention", label, row.marker))
        steps = {"detector": self.t_fsd_online, "fsd": self.events().get("t_fsd"), "grok": self.t_grok}
        for kind, tag, label, _ in EVENT_MARKERS:
            if steps[kind] is not None:
                out.append(Marker(int(steps[kind]), kind, label, tag))
        return out


def format_kappa(value: Any) -> str:
    v = _number(value)
    return f"{v:g}" if math.isfinite(v) else "?"


def note_request(holder: Any, cmd: Command) -> None:
    """Record a sent command as pending on anything that keeps `_pending` (name -> value), `pending_pause` and
    a `version` counter (RunState, the compare view's runs): a second key press builds on the first."""
    row = interventions.BY_KIND.get(cmd.kind)
    if row is not None and row.hyperparameter and cmd.value is not None:
        holder._pending[row.name] = cmd.value
    elif cmd.kind in ("pause", "resume"):
        holder.pending_pause = cmd.kind == "pause"
    holder.version += 1
