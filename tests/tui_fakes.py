"""A scripted run source for the TUI tests: records the commands it is sent and posts rows and events
on demand, so Pilot tests drive the app without training anything."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from grokmon.events import Command
from grokmon.tui.messages import MetricsRow, RunConfig, RunEvent

CONFIG: dict[str, Any] = {
    "task": {"p": 113}, "model": {}, "optim": {"lr": 1e-3, "weight_decay": 1.0},
    "train": {"max_steps": 10000, "eval_every": 100},
    "metrics": {"metrics_every": 5, "alpha": 0.05}, "run": {"wd_factor": 2.0},
}


class FakeSource:
    """The app's source interface: start, send, stop, wait_stopped, latest_spectra, live, run_dir, config."""

    def __init__(self, *, live: bool = True, config: dict[str, Any] | None = CONFIG,
                 run_dir: Path = Path("runs/fake"), spectra: dict[str, list[float]] | None = None) -> None:
        self.live = live
        self.config = config
        self.run_dir = run_dir
        self.spectra = spectra
        self.app: Any = None
        self.sent: list[Command] = []
        self.started = 0
        self.stopped = 0
        self.waited = 0
        self.release = asyncio.Event()  # wait_stopped returns once this is set (stop() sets it)
        self.hold = False  # keep wait_stopped waiting after stop(), to see the "stopping" state

    def start(self, app: Any) -> None:
        self.app = app
        self.started += 1

    def send(self, cmd: Command) -> None:
        self.sent.append(cmd)

    def stop(self) -> None:
        self.stopped += 1
        if not self.hold:
            self.release.set()

    async def wait_stopped(self) -> None:
        self.waited += 1
        await self.release.wait()

    def latest_spectra(self) -> dict[str, list[float]] | None:
        return self.spectra

    # -- scripting -----------------------------------------------------------------------------

    def row(self, **fields: Any) -> None:
        self.app.post_message(MetricsRow(fields))

    def event(self, type: str, step: int = 0, **fields: Any) -> None:  # noqa: A002
        self.app.post_message(RunEvent({"step": step, "wall_s": step / 100, "time": time.time(), "type": type,
                                        **fields}))

    def configure(self, config: dict[str, Any]) -> None:
        self.app.post_message(RunConfig(config))


def metrics_row(step: int, *, wd: float = 1.0, lr: float = 1e-3, probe: bool = False, grok_at: int = 3000,
                **extra: Any) -> dict[str, Any]:
    """A plausible metrics.jsonl row: train acc rises first, val acc crosses 0.95 at grok_at."""
    train_acc = min(1.0, step / 1000)
    val_acc = 1.0 / (1.0 + math.exp(min(50.0, -(step - grok_at + 200) / 100)))
    row: dict[str, Any] = {
        "step": step, "wall_s": step / 100, "train_loss": 4.7 * math.exp(-step / 500) + 1e-4,
        "train_acc": train_acc, "val_loss": 4.7 * (1 - val_acc) + 1e-3, "val_acc": val_acc,
        "lr": lr, "weight_decay": wd, "phase": "memorisation" if step < 1000 else "circuit formation",
    }
    if probe:
        row.update(fsd=min(1.0, step / 2500), fsd_p=max(1e-3, 10 ** (-step / 1000)), fsd_z=step / 500,
                   fsd_sync=10 ** (-step / 1000) < 0.05, top_freqs=[[14, 0.3], [35, 0.2], [41, 0.1], [52, 0.05], [3, 0.02]],
                   wl_top_freqs=[[14, 0.4], [41, 0.2], [35, 0.1], [52, 0.05], [7, 0.01]])
    else:
        row.update(fsd=None, fsd_p=None, fsd_z=None, fsd_sync=None, top_freqs=None, wl_top_freqs=None)
    row.update(extra)
    return row


def screen_text(app: Any) -> str:
    """The current screen as plain text (what a user would read)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def record_notifications(app: Any) -> list[tuple[str, str]]:
    """Patch app.notify to also record (message, severity); toasts are off under run_test anyway."""
    seen: list[tuple[str, str]] = []
    original = app.notify

    def notify(message: str, *, title: str = "", severity: str = "information", timeout: float | None = None,
               markup: bool = True) -> None:
        seen.append((str(message), severity))
        original(message, title=title, severity=severity, timeout=timeout, markup=markup)

    app.notify = notify
    return seen
