"""Where the app's data comes from: a run trained in this process, or a run directory written by another.

Both post the same messages (run-directory records) and take the same commands, so the app cannot tell
them apart. Owns the trainer thread's lifetime; knows nothing about panels or keys.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from textual.app import App
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from grokmon.engine import Engine, RunResult
from grokmon.events import Command, Evaluation, Event, RunStarted
from grokmon.sinks.follow import JsonlFollower, append_command
from grokmon.sinks.rundir import RunDir, event_record
from grokmon.tui.messages import MetricsRow, RunConfig, RunEvent


class LiveSource:
    """Trains in a thread worker; each event becomes one post_message (thread-safe, never blocks)."""

    live = True

    def __init__(self, engine: Engine, run: RunDir) -> None:
        self.engine = engine
        self.run = run
        self.run_dir = run.path
        self.config: dict[str, Any] | None = engine.cfg.to_dict()
        self.result: RunResult | None = None
        self._app: App | None = None
        self._worker: Worker | None = None
        self._spectra: dict[str, list[float]] | None = None
        self._stop_sent = False

    def start(self, app: App) -> None:
        self._app = app
        self.engine.sinks = [self.run, self._post]
        self._worker = app.run_worker(self._train, thread=True, exit_on_error=False, name="train",
                                      group="train", description="grokmon training loop")

    def _train(self) -> None:
        try:
            self.result = self.engine.run()  # the engine turns its own exceptions into a Failed event
        except BaseException as exc:  # a sink failed while reporting a failure: still tell the user
            if self._app is not None:
                self._app.post_message(RunEvent({
                    "step": self.engine.step, "wall_s": round(self.engine.wall_s, 3), "time": time.time(),
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
        self.engine.commands.put(cmd)  # applied between steps on the trainer thread

    def stop(self, source: str = "key:q") -> None:
        """Ask the trainer to stop at the next step boundary (checkpoint, summary); the first reason wins."""
        if self.result is None and not self._stop_sent:
            self._stop_sent = True
            self.engine.commands.put(Command("stop", source=source))

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
        self._metrics = JsonlFollower(self.run_dir / "metrics.jsonl")
        self._events = JsonlFollower(self.run_dir / "events.jsonl")
        self._spectra_f = JsonlFollower(self.run_dir / "spectra.jsonl")
        self._spectra: dict[str, list[float]] | None = None
        self._app: App | None = None

    def start(self, app: App) -> None:
        self._app = app
        self.poll()
        app.set_interval(self.interval_s, self.poll, name="watch-poll")

    def poll(self) -> None:
        """Read what the other process appended (whole lines only) and post it."""
        app = self._app
        if app is None:
            return
        if self.config is None and (self.run_dir / "config.json").is_file():
            try:
                self.config = json.loads((self.run_dir / "config.json").read_text())
            except (OSError, json.JSONDecodeError):
                self.config = None  # caught mid-write: try again next poll
            if self.config is not None:
                app.post_message(RunConfig(self.config))
        for event in self._events.read_new():
            app.post_message(RunEvent(event))
        for row in self._metrics.read_new():
            app.post_message(MetricsRow(row))
        spectra = self._spectra_f.read_new()
        if spectra:
            self._spectra = spectra[-1]  # component -> energies, plus the step it was measured at

    def send(self, cmd: Command) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        append_command(self.run_dir, cmd.kind, cmd.value, source=cmd.source)

    def stop(self) -> None:
        """Watching never stops the other process's run."""

    async def wait_stopped(self) -> None:
        return None

    def latest_spectra(self) -> dict[str, list[float]] | None:
        return self._spectra
