"""One run's life, owned in one place: prepare a new, resumed or branched run (validation, the latest usable
checkpoint), open its directory and control file, apply the signal policy, run it with the caller's extra
sinks, and report the result. The CLI, the TUI, fork branches and sweep workers all start runs here.

Signal policy: the first SIGINT / SIGTERM / SIGHUP stops the run at a step boundary with a checkpoint and
summary; a second stops it at once (no final checkpoint, still a summary). Either way the exit status is
130 / 143 / 129 and no traceback reaches the user. Knows nothing about the UI.
"""

from __future__ import annotations

import shutil
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from grokmon.config import Config, apply_overrides
from grokmon.errors import ConfigError
from grokmon.events import Command, Finished, Sink
from grokmon.rundir import layout
from grokmon.rundir.lock import RunLock
from grokmon.rundir.readers import checkpoints, load_checkpoint, read_config, read_events, read_jsonl, read_summary
from grokmon.rundir.records import DONE, dumps, valid_row
from grokmon.trainstate import TrainingState

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
EARLY_SIGNALS: list[int] = []  # stop signals the CLI noted before a run installed its policy (see cli.main)
STOP_SIGNALS = tuple(SIGNAL_EXIT)
RESUMABLE_SECTIONS = ("train", "metrics", "schedule", "run")  # what --set may change on --resume


class Aborted(BaseException):
    """Raised in the main thread by a second stop signal: leave the step now (not an Exception, so the
    engine's failure handler does not record it as a crash)."""


class SignalPolicy:
    """First stop signal -> `first(name)`; any later one -> `second(name)`. Install it for a `with` block."""

    def __init__(self, first: Callable[[str], None], second: Callable[[str], None]) -> None:
        self.first, self.second = first, second
        self.received: list[int] = []

    def __call__(self, signum: int, frame: Any = None) -> None:
        self.received.append(signum)
        name = signal.Signals(signum).name
        (self.first if len(self.received) == 1 else self.second)(name)

    @property
    def exit_code(self) -> int | None:
        """130 / 143 / 129 for the first signal received, None if none came."""
        return SIGNAL_EXIT[signal.Signals(self.received[0])] if self.received else None

    def installed(self) -> "_Installed":
        return _Installed(self)


class _Installed:
    def __init__(self, policy: SignalPolicy) -> None:
        self.policy = policy
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> SignalPolicy:
        if threading.current_thread() is threading.main_thread():  # Python delivers signals there only
            self.previous = {s: signal.signal(s, self.policy) for s in STOP_SIGNALS}
            while EARLY_SIGNALS:  # a signal that came while grokmon was starting is this run's first
                self.policy(EARLY_SIGNALS.pop(0))
        return self.policy

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


@dataclass
class SessionResult:
    status: str  # a RunStatus value
    step: int
    t_grok: int | None
    run_dir: Path
    reason: str = ""
    error: str = ""
    signal: int | None = None  # the first stop signal this process received

    @property
    def exit_code(self) -> int:
        """0 for a run that completed or was stopped; 130 / 143 / 129 after a signal; 1 if it failed or diverged."""
        if self.signal is not None:
            return SIGNAL_EXIT[signal.Signals(self.signal)]
        return 1 if self.status in ("failed", "diverged") else 0


@dataclass
class RunSession:
    """One run directory's run. Build it with `new`, `resume` or `branch`; then `open()` and `run()`."""

    cfg: Config
    run_dir: Path
    state: TrainingState | None = None  # where training starts; None = step 0
    start_commands: tuple[Command, ...] = ()  # applied before the first step (a fork's weight decay)
    replay: tuple[tuple[int, Command], ...] = ()  # (step, command) a process that died applied after its checkpoint
    notes: list[str] = field(default_factory=list)  # things the caller may tell the user
    engine: Any = None
    rundir: Any = None
    lock: RunLock | None = None  # this process's writer lock on run_dir, from preparation to the end
    finished_before: bool = False  # summary.json said completed or diverged (records.DONE) when the lock was taken
    resumed: bool = False  # continues (or restarts) a run that an earlier process wrote
    _sinks: tuple[Sink, ...] = ()

    # -- preparing ---------------------------------------------------------------------------------

    @classmethod
    def new(cls, cfg: Config, run_dir: Path) -> "RunSession":
        """A fresh run in a directory that does not exist or is empty."""
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError("exists and is not a directory; choose another --out", source=str(run_dir))
        lock = RunLock.acquire(run_dir)  # before the emptiness check: two runs started together race here
        # control.jsonl alone is allowed: commands a script queued for the run, applied before step 1.
        if any(p.name not in (layout.CONTROL, layout.LOCK, layout.OWNER) for p in run_dir.iterdir()):
            lock.release()
            raise ConfigError("exists and is not an empty directory; choose another --out, "
                              "or continue it with --resume", source=str(run_dir))
        return cls(cfg, run_dir, lock=lock)

    @classmethod
    def resume(cls, run_dir: Path, overrides: Sequence[str] = (), max_steps: int | None = None) -> "RunSession":
        """Continue a run from its latest usable checkpoint; a run that has none starts again from step 0
        with its own config. `overrides` may change only RESUMABLE_SECTIONS."""
        run_dir = Path(run_dir)
        if not layout.is_run_dir(run_dir):
            raise ConfigError("not a grokmon run directory (no config.json)", source=str(run_dir))
        lock = RunLock.acquire(run_dir)  # a resume of a run that is still training is refused here
        try:
            return cls._resume_locked(run_dir, lock, overrides, max_steps)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _resume_locked(cls, run_dir: Path, lock: RunLock, overrides: Sequence[str],
                       max_steps: int | None) -> "RunSession":
        cfg = read_config(run_dir)
        for item in overrides:
            section = item.split("=", 1)[0].split(".", 1)[0].strip()
            if section not in RESUMABLE_SECTIONS:
                raise ConfigError(f"a resumed run can only change {', '.join(RESUMABLE_SECTIONS)} values",
                                  source="--set", key=item.split("=", 1)[0])
        trained_in = cfg.train.precision
        cfg = apply_overrides(cfg, list(overrides))
        if cfg.train.precision != trained_in:  # the AdamW state and the run's numerics belong to one precision
            raise ConfigError(f"expected the run's own precision on --resume ({trained_in!r}), got "
                              f"{cfg.train.precision!r}; start a new run (or fork) to compare precisions",
                              source="--set", key="train.precision")
        if max_steps is not None:
            cfg = cfg.replace("train", max_steps=max_steps)
        session = cls(cfg, run_dir, lock=lock, resumed=True)
        session.state = session._latest_state()
        if session.state is not None:
            session.replay = _lost_interventions(run_dir, session.state.step)
        if session.state is None:
            session._clear()
            session.notes.append(f"{run_dir} has no checkpoint: starting it again from step 0 with its config")
        elif session.state.step >= cfg.train.max_steps:
            session.notes.append(f"{run_dir} is already at step {session.state.step} >= max_steps "
                                 f"{cfg.train.max_steps}; pass --steps N to train further")
        return session

    @classmethod
    def branch(cls, cfg: Config, run_dir: Path, *, start: Path | None, commands: Sequence[Command] = (),
               history_from: Path | None = None) -> "RunSession":
        """A job's run (fork branch, sweep run): continue its own latest checkpoint if it has one; else start
        from `start` (a fork point: the parent's rows before it are copied in, `commands` applied first) or
        from step 0 (leftovers of an attempt that died before its first checkpoint are cleared)."""
        lock = RunLock.acquire(Path(run_dir))
        session = cls(cfg, Path(run_dir), lock=lock)
        try:
            summary = read_summary(session.run_dir)
            session.finished_before = summary is not None and summary["status"] in DONE
            session.state = session._latest_state()
        except BaseException:
            lock.release()
            raise
        if session.state is not None:
            session.replay = _lost_interventions(session.run_dir, session.state.step)
            session.resumed = True
            return session
        session._clear()
        if start is not None:
            session.state = load_checkpoint(start)
            _copy_history(history_from, session.run_dir, session.state.step)
            session.start_commands = tuple(commands)
        return session

    def _latest_state(self) -> TrainingState | None:
        """The newest checkpoint that loads (newer unreadable ones are skipped with a note); None when the
        run has no checkpoint at all. Checkpoints that all fail to load are an error: starting again from
        step 0 would throw away the rows they back."""
        errors: list[ConfigError] = []
        for step, path in sorted(checkpoints(self.run_dir).items(), reverse=True):
            try:
                state = load_checkpoint(path)
            except ConfigError as e:
                errors.append(e)
                continue
            self.notes += [f"skipping an unreadable newer checkpoint: {e}" for e in errors]
            return state
        if errors:
            raise errors[0]
        return None

    def _clear(self) -> None:
        """Remove what a run that never checkpointed left (rows that no checkpoint backs), keep the rest."""
        if not self.run_dir.is_dir():
            return
        for path in self.run_dir.iterdir():
            if path.name in (layout.CONFIG, layout.META, layout.LOCK, layout.OWNER, layout.CONTROL):
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    # -- running -----------------------------------------------------------------------------------

    def open(self, extra_sinks: Sequence[Sink] = ()) -> None:
        """Build the engine (config and checkpoint errors surface here, before any file is written), then
        open the run directory. Events go to the run directory first, then to `extra_sinks`."""
        from grokmon.engine import Engine
        from grokmon.rundir.control import ControlFile
        from grokmon.rundir.writer import RunDir

        try:
            control = ControlFile(self.run_dir, from_end=self.resumed)
            self.engine = Engine(self.cfg, sinks=(self._dispatch,), checkpointer=self,
                                 command_sources=(control,), resume_state=self.state)
            # The summary of an earlier end of this run no longer describes it: if this process dies, readers
            # must see a run without a summary (dead), not the old "completed".
            (self.run_dir / layout.SUMMARY).unlink(missing_ok=True)
            self.rundir = RunDir(self.run_dir, resume_step=self.state.step if self.state is not None else None,
                                 excluded_analysis=_excluded_analysis)
        except OSError as e:
            self.release()
            raise ConfigError(f"cannot write the run directory: {e.strerror or e}", source=str(self.run_dir)) from None
        except BaseException:
            self.release()
            raise
        if self.lock is not None:
            self.lock.start_heartbeat()
        self._sinks = (self.rundir, *extra_sinks)
        for cmd in self.start_commands:
            self.engine.commands.put(cmd)
        for step, cmd in self.replay:
            self.engine.replay_at(step, cmd)

    def _dispatch(self, event: Any) -> None:
        for sink in self._sinks:
            sink(event)

    def save(self, step: int, state: TrainingState) -> str:
        """The engine's Checkpointer: the run directory writes it."""
        return self.rundir.save(step, state)

    def send(self, cmd: Command) -> None:
        """Queue a command for the run (any thread); applied between steps."""
        self.engine.commands.put(cmd)

    def run(self, *, handle_signals: bool = True) -> SessionResult:
        """Train to the end. With `handle_signals` (the main thread of a headless process) the signal
        policy is installed for the run; otherwise the caller applies it (`stop_requested`, `abort`)."""
        if self.engine is None:
            self.open()
        engine = self.engine
        policy = SignalPolicy(engine.request_stop, _raise_abort)
        try:
            if handle_signals:
                with policy.installed():
                    result = engine.run()
            else:
                result = engine.run()
        except Aborted as e:
            result = self._aborted(str(e))
        finally:
            self.rundir.close()
            self.release()
        return SessionResult(str(result.status), result.step, result.t_grok, self.run_dir, result.reason,
                             result.error, policy.received[0] if policy.received else None)

    def release(self) -> None:
        """Give up the run directory (also done by the OS if this process dies)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _aborted(self, name: str) -> Any:
        """A second signal left the step midway: record the interruption; the last checkpoint stands."""
        from grokmon.engine import RunResult, RunStatus

        reason = f"signal:{name} (second signal: stopped at once, without a final checkpoint)"
        self.rundir(Finished(step=self.engine.step, wall_s=self.engine.wall_s, status=RunStatus.INTERRUPTED,
                             reason=reason))
        return RunResult(RunStatus.INTERRUPTED, self.engine.step, self.engine.t_grok, reason=reason)


def _raise_abort(name: str) -> None:
    raise Aborted(name)


def _lost_interventions(run_dir: Path, step: int) -> tuple[tuple[int, Command], ...]:
    """The value interventions (set_weight_decay, set_lr, ...) that events.jsonl records at or after `step`,
    from steering (control file, keys): a process that died after applying them left no checkpoint with them,
    so the resumed run applies them again at the same steps. Schedules and fork commands decide again by
    themselves; pause, checkpoint and stop change no row."""
    from grokmon.interventions import BY_NAME

    out: dict[tuple[int, str, str], Command] = {}
    for e in read_events(run_dir):
        row = BY_NAME.get(str(e.get("name")))
        source = str(e.get("source", ""))
        if e["type"] != "intervention" or row is None or not row.takes_value or e["step"] < step:
            continue
        if source.startswith(("schedule:", "fork", "signal:")):
            continue
        try:
            out[(e["step"], row.kind, source)] = Command(row.kind, e.get("new"), source=source)
        except ValueError:
            continue  # a value this grokmon would refuse: it cannot have been applied by it
    return tuple((key[0], cmd) for key, cmd in sorted(out.items(), key=lambda kv: kv[0][0]))  # stable: file order


def _copy_history(source: Path | None, run_dir: Path, step: int) -> None:
    """Start a branch's files with its parent's rows from before the fork, so its curves are whole."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in layout.HISTORY_FILES:
        lines = []
        if source is not None:
            for row in read_jsonl(Path(source) / name):
                if not (valid_row(row) and row["step"] < step):
                    continue
                if row.get("type") != "checkpoint":  # the parent's checkpoints are not in this directory
                    lines.append(row)
        (run_dir / name).write_text("".join(dumps(r) + "\n" for r in lines))


def _excluded_analysis(run_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's offline excluded-loss record (final keys, from the checkpoints), for RunDir. Never raises:
    the analysis must not cost a run its summary, so a failure becomes the record's reason."""
    from grokmon.offline import excluded_record, missing_record  # the model and torch: only when a run has ended

    try:
        return excluded_record(run_dir, rows=rows)
    except Exception as exc:
        return missing_record(f"recomputation failed ({type(exc).__name__}: {exc})")
