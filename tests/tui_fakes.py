"""A scripted run source for the TUI tests: records the commands it is sent and posts rows and events
on demand, so Pilot tests drive the app without training anything."""

from __future__ import annotations

import asyncio
import io
import math
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console, ConsoleRenderable
from rich.text import Text
from textual.content import Content
from textual.widgets import Static

from grokmon.events import Command
from grokmon.tui.event_log import EventLog
from grokmon.tui.messages import MetricsRow, RunConfig, RunEvent

CONFIG: dict[str, Any] = {
    "task": {"p": 113}, "model": {}, "optim": {"lr": 1e-3, "weight_decay": 1.0},
    "train": {"max_steps": 10000, "eval_every": 100},
    "metrics": {"metrics_every": 5, "alpha": 0.05, "n_perm": 1000}, "run": {"wd_factor": 2.0},
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


PROGRESS_KEYS = ("restricted_loss", "excluded_loss", "gini_embed", "gini_wl", "weight_norm", "key_freqs")


def metrics_row(step: int, *, wd: float = 1.0, lr: float = 1e-3, probe: bool = False, grok_at: int = 3000,
                key_freqs: tuple[int, ...] | None = (14, 35, 41), **extra: Any) -> dict[str, Any]:
    """A plausible metrics.jsonl row: train acc rises first, val acc crosses 0.95 at grok_at. A probed row
    carries the Fourier keys; key_freqs=None leaves that key out (rows written before it existed)."""
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
                   wl_top_freqs=[[14, 0.4], [41, 0.2], [35, 0.1], [52, 0.05], [7, 0.01]],
                   restricted_loss=4.0 * 10 ** (-step / 2000), excluded_loss=0.01 * 10 ** (step / 2000),
                   gini_embed=min(1.0, step / 6000), gini_wl=min(1.0, step / 5000), weight_norm=2000 - step / 5,
                   key_freqs=list(key_freqs or ()))
    else:
        row.update(fsd=None, fsd_p=None, fsd_z=None, fsd_sync=None, top_freqs=None, wl_top_freqs=None,
                   **{k: None for k in PROGRESS_KEYS})
    if key_freqs is None:
        del row["key_freqs"]
    row.update(extra)
    return row


def screen_text(app: Any) -> str:
    """The current screen as plain text, close to what a user reads: every displayed widget's content painted
    at its region, parents first so children draw over them, with border titles on the top row. Uses only
    public widget APIs (region, content_region, border_title, Static.content, render())."""
    width, height = app.size
    grid = [[" "] * width for _ in range(height)]

    def put(x: int, y: int, text: str, room: int) -> None:
        if 0 <= y < height:
            for i, ch in enumerate(text[: max(0, min(room, width - x))]):
                grid[y][x + i] = ch

    for widget in app.screen.query("*"):
        region, content = widget.region, widget.content_region
        if not widget.display or not region.area:
            continue
        for i, line in enumerate(_lines(widget, content.width)[: content.height]):
            put(content.x, content.y + i, line, content.width)
        if widget.border_title:
            put(region.x + 1, region.y, Content.from_markup(widget.border_title).plain, region.width - 2)
    return "\n".join("".join(row) for row in grid)


def _lines(widget: Any, width: int) -> list[str]:
    """A widget's content as plain lines, folded at `width` the way the status bar folds."""
    if isinstance(widget, EventLog):
        return widget.lines_text[-widget.content_region.height:]
    # A Static's own content when it is a rich object (render() wraps those); a string is parsed as markup
    # or not per widget, so its render() is the text shown.
    visual = widget.content if isinstance(widget, Static) and not isinstance(widget.content, str) else widget.render()
    if isinstance(visual, (Content, Text)):
        raw = visual.plain.split("\n")
    elif isinstance(visual, ConsoleRenderable):  # a rich renderable, e.g. the help screen's table
        console = Console(width=max(1, width), file=io.StringIO(), color_system=None, legacy_windows=False)
        console.print(visual)
        raw = console.file.getvalue().rstrip("\n").split("\n")  # type: ignore[attr-defined]
    else:  # containers (Blank): nothing of their own
        return []
    return [line[i: i + width] for line in raw for i in range(0, max(1, len(line)), max(1, width))]


async def wait_for(pilot: Any, predicate: Callable[[], object], what: str = "the condition", tries: int = 50,
                   delay: float | None = None) -> None:
    """Let the app process messages until `predicate()` holds; fail after `tries` rounds, saying what.
    `delay` (seconds per round) is for conditions a timer brings about, so the rounds span its interval."""
    for _ in range(tries):
        if predicate():
            return
        await pilot.pause(delay)
    assert predicate(), f"timed out waiting for {what}"


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
