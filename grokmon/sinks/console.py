"""Console progress for headless runs, on stderr: a rich progress bar on a terminal, plain lines otherwise.

Reads events only; never touches the engine or the files.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from grokmon.events import Alert, Evaluation, Event, Failed, Finished, Intervention, RunStarted


class ConsoleProgress:
    """Shows step, steps/s and train/val accuracy; interventions and alerts as their own lines."""

    def __init__(self, max_steps: int, *, stream: IO[str] | None = None, interval_s: float = 10.0,
                 live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.max_steps = max_steps
        self.interval_s = interval_s
        self.live = self.stream.isatty() if live is None else live
        self.console = Console(file=self.stream, highlight=False)
        self._progress: Progress | None = None
        self._task = None
        self._last_print = -1e9
        self._rate_ref: tuple[int, float] | None = None  # (step, wall_s) of the last rate sample
        self.rate = 0.0
        self._unprinted: Evaluation | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._rate_ref = (event.step, event.wall_s)
            what = "resumed at step" if event.resumed else "started"
            self._say(f"grokmon: run {what} {event.step if event.resumed else ''}".rstrip()
                      + f" on {event.device}: {event.n_params:,} params, {event.n_train} train / {event.n_val} val pairs")
            if self.live:
                self._progress = Progress(
                    TextColumn("[bold]step"), MofNCompleteColumn(), BarColumn(),
                    TextColumn("{task.fields[rate]:>6.1f} steps/s  train {task.fields[train]:.3f}  val {task.fields[val]:.3f}"),
                    TimeElapsedColumn(), console=self.console, transient=False,
                )
                self._progress.start()
                self._task = self._progress.add_task("train", total=self.max_steps, completed=event.step,
                                                     rate=0.0, train=0.0, val=0.0)
        elif isinstance(event, Evaluation):
            if self._rate_ref is not None and event.wall_s > self._rate_ref[1] and event.step > self._rate_ref[0]:
                self.rate = (event.step - self._rate_ref[0]) / (event.wall_s - self._rate_ref[1])
            self._rate_ref = (event.step, event.wall_s)
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, completed=event.step, rate=self.rate,
                                      train=event.train_acc, val=event.val_acc)
            elif time.monotonic() - self._last_print >= self.interval_s:
                self._print_eval(event)
            else:
                self._unprinted = event
        elif isinstance(event, Intervention):
            change = f" {event.old:g} -> {event.new:g}" if event.new is not None and event.old is not None else ""
            self._say(f"step {event.step}: {event.name}{change} ({event.source})")
        elif isinstance(event, Alert):
            self._say(f"step {event.step}: ALERT {event.kind}: {event.message}")
        elif isinstance(event, (Finished, Failed)):
            if self._unprinted is not None:  # the last evaluation is always shown
                self._print_eval(self._unprinted)
            self.close()

    def _print_eval(self, event: Evaluation) -> None:
        self._last_print = time.monotonic()
        self._unprinted = None
        self._say(f"step {event.step}/{self.max_steps}  {self.rate:.1f} steps/s  "
                  f"train_acc {event.train_acc:.3f}  val_acc {event.val_acc:.3f}  "
                  f"train_loss {event.train_loss:.3g}  val_loss {event.val_loss:.3g}")

    def _say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
