"""Where the app's data comes from: a run trained in this process, or a run directory written by another.

Both post the same messages (run-directory records) and take the same commands, so the app cannot tell
them apart. Owns the trainer thread's lifetime; knows nothing about panels or keys.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual.app import App
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from grokmon.events import Command, Evaluation, Event, RunStarted
from grokmon.rundir import layout
from grokmon.rundir.control import append_command
from grokmon.errors import GrokmonError
from grokmon.rundir.lock import NOT_LIVE, liveness
from grokmon.rundir.readers import JsonlFollower, read_events, read_json, read_rows, read_summary
from grokmon.rundir.records import event_record
from grokmon.session import RunSession, SessionResult
from grokmon.tui.messages import MetricsRow, RunConfig, RunEvent


class LiveSource:
    """Runs a session in a thread worker; each event becomes one post_message (thread-safe, never blocks).
    Opening the session happens here, before the app starts, so its errors reach the terminal."""

    live = True

    def __init__(self, session: RunSession) -> None:
        self.session = session
        session.open([self._post])
        self.run_dir = session.run_dir
        self.config: dict[str, Any] | None = session.cfg.to_dict()
        self.result: SessionResult | None = None
        self._app: App | None = None
        self._worker: Worker | None = None
        self._spectra: dict[str, list[float]] | None = None
        self._stop_sent = False

    def start(self, app: App) -> None:
        self._app = app
        self._post_history(app)
        self._worker = app.run_worker(self._train, thread=True, exit_on_error=False, name="train",
                                      group="train", description="grokmon training loop")

    def _post_history(self, app: App) -> None:
        """Post what the run directory already holds, before the trainer adds to it: a resumed run's events
        (earlier interventions included), its rows before the resume step (the session kept only those) and
        its last spectra; a fork branch's copied history. Messages are handled in order, so the trainer's
        own resume event comes after, and RunState forgets only what the old process did after the step."""
        for event in read_events(self.run_dir):
            app.post_message(RunEvent(event, replayed=True))
        for row in read_rows(self.run_dir):
            app.post_message(MetricsRow(row))
        spectra = JsonlFollower(self.run_dir / layout.SPECTRA).read_new()
        if spectra:
            self._spectra = spectra[-1]

    def _train(self) -> None:
        try:
            # The engine turns its own exceptions into a Failed event; signals are the main thread's (cli).
            self.result = self.session.run(handle_signals=False)
        except BaseException as exc:  # a sink failed while reporting a failure: still tell the user
            if self._app is not None:
                engine = self.session.engine
                self._app.post_message(RunEvent({
                    "step": engine.step, "wall_s": round(engine.wall_s, 3), "time": time.time(),
                    "type": "failed", "error": f"{type(exc).__name__}: {exc}"}))
            raise

    def _post(self, event: Event) -> None:
        """Runs on the trainer thread: convert to a plain record and hand it over, nothing else."""
        app = self._app
        if app is None:
            return
        if isinstance(event, Evaluation):
            if event.spectra:  # one reference assignment: safe to read from the UI thread
                self._spectra = {"step": event.step, **event.spectra}
            app.post_message(MetricsRow(event.record()))
            return
        if isinstance(event, RunStarted):
            app.post_message(RunConfig(dict(event.config)))
        record = event_record(event)
        if record is not None:
            app.post_message(RunEvent(record))

    def send(self, cmd: Command) -> None:
        self.session.send(cmd)  # applied between steps on the trainer thread

    def stop(self, source: str = "key:q") -> None:
        """Ask the trainer to stop at the next step boundary (checkpoint, summary); the first reason wins."""
        if self.result is None and not self._stop_sent:
            self._stop_sent = True
            if source.startswith("signal:"):  # a signal interrupts; q stops (the run's status says which)
                self.session.engine.request_stop(source.split(":", 1)[1])
            else:
                self.session.send(Command("stop", source=source))

    async def wait_stopped(self) -> None:
        if self._worker is None:
            return
        try:
            await self._worker.wait()
        except (WorkerCancelled, WorkerFailed):
            pass  # a failure already reached the app as a "failed" event

    def latest_spectra(self) -> dict[str, list[float]] | None:
        return self._spectra


class WatchSource:
    """Follows RUN_DIR written by another process; commands go to RUN_DIR/control.jsonl for its engine."""

    live = False

    def __init__(self, run_dir: Path, interval_s: float = 0.5) -> None:
        self.run_dir = Path(run_dir)
        self.interval_s = interval_s
        self.config: dict[str, Any] | None = None
        self._metrics = JsonlFollower(self.run_dir / layout.METRICS)
        self._events = JsonlFollower(self.run_dir / layout.EVENTS)
        self._spectra_f = JsonlFollower(self.run_dir / layout.SPECTRA)
        self._spectra: dict[str, list[float]] | None = None
        self._app: App | None = None
        self._dead_reported = False
        self.liveness = "waiting"  # waiting (no run yet), live, finished, dead or unknown (rundir.lock.liveness)

    def start(self, app: App) -> None:
        self._app = app
        exit_on_signals(app)
        self.poll()
        app.set_interval(self.interval_s, self.poll, name="watch-poll")

    def poll(self) -> None:
        """Read what the other process appended (whole lines only) and post it."""
        app = self._app
        if app is None:
            return
        if self.config is None:
            self.config = read_json(self.run_dir / layout.CONFIG)  # None until written: try again next poll
            if self.config is not None:
                app.post_message(RunConfig(self.config))
        for event in self._events.read_new():
            app.post_message(RunEvent(event))
        for row in self._metrics.read_new():
            app.post_message(MetricsRow(row))
        spectra = self._spectra_f.read_new()
        if spectra:
            self._spectra = spectra[-1]  # component -> energies, plus the step it was measured at
        self._check_owner(app)

    def _check_owner(self, app: App) -> None:
        """Tell the app once when the writer is gone without a summary (kill -9, a crash, a lost machine)."""
        if not layout.is_run_dir(self.run_dir):
            self.liveness = "waiting"
            return
        summary = read_summary(self.run_dir)
        self.liveness = liveness(self.run_dir, summary["status"] if summary is not None else None)
        if self.liveness == "live":
            self._dead_reported = False
        elif self.liveness == "dead" and not self._dead_reported:
            self._dead_reported = True
            app.post_message(RunEvent({
                "step": None, "time": time.time(), "type": "failed",
                "error": f"the training process is gone without a summary (killed, crashed or its machine went "
                         f"down); continue it with `grokmon run --resume {self.run_dir}`"}))

    def send(self, cmd: Command) -> None:
        """Append the command to control.jsonl, only while a process is training the run: a command queued
        for a run that is not live would be applied by some later resume, or not at all."""
        summary = read_summary(self.run_dir) if layout.is_run_dir(self.run_dir) else None
        state = liveness(self.run_dir, summary["status"] if summary is not None else None)
        if state != "live":
            why = NOT_LIVE.get(state, NOT_LIVE["waiting"])
            raise GrokmonError(f"not sent: the run {why}; commands go only to a live run")
        append_command(self.run_dir, cmd.kind, cmd.value, source=cmd.source)

    def stop(self) -> None:
        """Watching never stops the other process's run."""

    async def wait_stopped(self) -> None:
        return None

    def latest_spectra(self) -> dict[str, list[float]] | None:
        return self._spectra


def exit_on_signals(app: App) -> None:
    """A viewer (watch, compare) has nothing to save: SIGINT, SIGTERM or SIGHUP leaves the app cleanly,
    restoring the terminal. Call from the app's loop (on mount or a source's start)."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, app.exit)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), or no signals
            return
