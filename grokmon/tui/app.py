"""GrokmonApp: lays out the panels, turns keys into Commands for the source, folds its messages into a
RunState and redraws on a timer (1 Hz, never per message). Knows the source only by its small interface,
and never changes a hyperparameter itself: it shows what the run's events say."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Footer

from grokmon.events import Command
from grokmon.tui.accuracy_plot import AccuracyPlot
from grokmon.tui.event_log import EventLog
from grokmon.tui.freq_panel import FreqPanel
from grokmon.tui.fsd_plot import FsdPlot
from grokmon.tui.help_screen import HelpScreen
from grokmon.tui.loss_plot import LossPlot
from grokmon.tui.messages import MetricsRow, RunConfig, RunEvent
from grokmon.tui.series import SMOOTHING, format_value
from grokmon.tui.spectrum_bars import SpectrumBars
from grokmon.tui.state import RunState
from grokmon.tui.status_bar import StatusBar
from grokmon.tui.time_plot import TimePlot
from grokmon.tui.wd_modal import WeightDecayModal

INTERVENTIONS = ("wd_up", "wd_down", "wd_exact", "pause", "resume", "checkpoint")
EXTRA_KEYS = [  # keys not in the app's BINDINGS, for the help screen
    ("tab / shift+tab", "move focus between the panels (the focused one has a heavy top border)"),
    ("v", "on the spectrum panel: cycle the component (embed, blocks..., unembed)"),
    ("ctrl+q", "quit, the same way as q"),
]


def _recent(event: dict[str, Any], within_s: float = 60.0) -> bool:
    stamp = event.get("time")
    return not isinstance(stamp, (int, float)) or time.time() - stamp < within_s


class RunSource(Protocol):
    run_dir: Path
    live: bool
    config: dict[str, Any] | None

    def start(self, app: App[Any]) -> None: ...
    def send(self, cmd: Command) -> None: ...
    def stop(self) -> None: ...
    async def wait_stopped(self) -> None: ...
    def latest_spectra(self) -> dict[str, list[float]] | None: ...


class GrokmonApp(App[None]):
    CSS_PATH = "grokmon.tcss"
    TITLE = "grokmon"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (20, "-medium"), (32, "-tall")]
    BINDINGS = [
        Binding("w", "wd_up", "WD up"),
        Binding("W,shift+w", "wd_down", "WD down", key_display="W"),
        Binding("d", "wd_exact", "WD="),
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("c", "checkpoint", "Ckpt"),
        Binding("y", "toggle_log", "Log"),
        Binding("s", "smoothing", "Smooth"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, source: RunSource, *, redraw_interval: float = 1.0) -> None:
        super().__init__()
        self.source = source
        self.state = RunState(source.config or None)
        self.redraw_interval = redraw_interval
        self.smoothing_index = 0
        self.stopping = False
        self._quit_presses = 0
        self._drawn_version: tuple[int, bool] | None = None
        self._binding_state: tuple[object, ...] | None = None
        self._spectra: dict[str, list[float]] | None = None
        self._spectra_key = 0

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Grid(id="panels"):
            yield AccuracyPlot(id="accuracy")
            yield LossPlot(id="loss")
            yield FsdPlot(id="fsd")
            yield FreqPanel(id="freqs")
        yield EventLog(id="log")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(AccuracyPlot).focus()
        self.set_interval(self.redraw_interval, self.redraw)
        self.redraw()
        self.source.start(self)

    @property
    def mode(self) -> str:
        return "live" if self.source.live else f"watching {self.source.run_dir}"

    # -- messages from the source ---------------------------------------------------------------

    def on_metrics_row(self, message: MetricsRow) -> None:
        self.state.ingest_row(message.row)
        self._refresh_bindings_if_changed()

    def on_run_config(self, message: RunConfig) -> None:
        self.state.ingest_config(message.config)
        self._refresh_bindings_if_changed()

    def on_run_event(self, message: RunEvent) -> None:
        event = message.event
        self.state.ingest_event(event)
        severity = self.query_one(EventLog).add_event(event)
        kind = event.get("type")
        # Run-supplied text goes out with markup=False: an error like "x[0]" is not a style tag. Besides a
        # failure, only events from the last minute pop up: a followed run replays its whole history.
        if kind == "failed":
            self.notify(f"training failed: {event.get('error', '')}", title="FAILED", severity="error", timeout=30,
                        markup=False)
        elif kind == "alert" and _recent(event):
            self.notify(str(event.get("message", "")), title=str(event.get("kind", "alert")),
                        severity="error" if severity == "error" else
                        "information" if event.get("kind") == "fsd_ceiling" else "warning", markup=False)
        elif kind == "finish" and _recent(event):
            self.notify(f"run finished: {event.get('status', '')}", timeout=10, markup=False)
        self._refresh_bindings_if_changed()

    # -- drawing -------------------------------------------------------------------------------

    def redraw(self) -> None:
        """Bring every panel up to date with the state; each panel skips work when nothing it shows changed."""
        state = self.state
        key = (state.version, self.stopping)
        if key != self._drawn_version:
            self._drawn_version = key
            self.query_one(StatusBar).update_from(state, self.mode, self.stopping)
            spectra = self._fetch_spectra()
            if spectra != self._spectra:
                self._spectra, self._spectra_key = spectra, self._spectra_key + 1
        with self.batch_update():
            for plot in self.query(TimePlot):
                plot.update_from(state)
            self.query_one(FreqPanel).update_from(state, (state.probe_version, self._spectra_key), self._spectra)

    def _fetch_spectra(self) -> dict[str, list[float]] | None:
        getter = getattr(self.source, "latest_spectra", None)
        try:
            return getter() if getter is not None else None
        except Exception as e:  # noqa: BLE001 -- the bars fall back to top_freqs
            self.log.warning(f"latest_spectra failed: {e!r}")
            return None

    # -- interventions -------------------------------------------------------------------------

    def blocked_reason(self, action: str) -> str | None:
        """Why an intervention key does nothing now, or None when it works."""
        if action not in INTERVENTIONS:
            return None
        if self.stopping:
            return "stopping: interventions are off"
        if self.state.status == "failed":
            return "the run failed: interventions are off"
        if self.state.status == "finished":
            return f"the run has finished ({self.state.finished}): interventions are off"
        if action in ("wd_up", "wd_down") and self.state.target_weight_decay is None:
            return "the weight decay is not known yet (no config or metrics row)"
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "resume") and action != ("resume" if self.state.target_paused else "pause"):
            return False  # `p` shows as Pause or Resume, never both
        if action in INTERVENTIONS and self.blocked_reason(action):
            return None  # greyed out in the footer; on_key says why
        return True

    def on_key(self, event: events.Key) -> None:
        """A key whose action is greyed out does nothing in Textual; say why instead."""
        if self.screen is not self.screen_stack[0]:
            return
        active = self.screen.active_bindings.get(event.key)
        if active is not None and not active.enabled:
            reason = self.blocked_reason(active.binding.action)
            if reason:
                self.notify(reason, severity="warning")

    def _refresh_bindings_if_changed(self) -> None:
        key = (self.state.status, self.state.target_paused, self.stopping, self.state.target_weight_decay is None)
        if key != self._binding_state:
            self._binding_state = key
            self.refresh_bindings()

    def send(self, cmd: Command) -> bool:
        """Hand a command to the source; the state notes it as pending until its event comes back."""
        try:
            self.source.send(cmd)
        except Exception as e:  # noqa: BLE001 -- e.g. an unwritable control.jsonl in watch mode
            self.notify(f"could not send {cmd.kind}: {e}", severity="error", markup=False)
            return False
        self.state.request(cmd)
        value = "" if cmd.value is None else f" {format_value(cmd.value)}"
        self.query_one(EventLog).note(f"sent {cmd.kind}{value} ({cmd.source})")
        self._refresh_bindings_if_changed()
        self.redraw()
        return True

    def _scale_weight_decay(self, factor: float, key: str) -> None:
        wd = self.state.target_weight_decay
        if wd is None:
            return
        if wd == 0:
            self.notify("weight decay is 0, so scaling keeps it 0: press d to type a value", severity="warning")
            return
        self.send(Command("set_weight_decay", wd * factor, source=f"key:{key}"))

    def action_wd_up(self) -> None:
        self._scale_weight_decay(self.state.wd_factor, "w")

    def action_wd_down(self) -> None:
        self._scale_weight_decay(1.0 / self.state.wd_factor, "W")

    def action_wd_exact(self) -> None:
        def chosen(value: float | None) -> None:
            if value is None:
                return
            reason = self.blocked_reason("wd_exact")
            if reason:
                self.notify(reason, severity="warning")
            else:
                self.send(Command("set_weight_decay", value, source="key:d"))

        self.push_screen(WeightDecayModal(self.state.target_weight_decay), chosen)

    def action_pause(self) -> None:
        self.send(Command("pause", source="key:p"))

    def action_resume(self) -> None:
        self.send(Command("resume", source="key:p"))

    def action_checkpoint(self) -> None:
        self.send(Command("checkpoint", source="key:c"))

    # -- view keys -----------------------------------------------------------------------------

    def action_toggle_log(self) -> None:
        target = self.focused
        if isinstance(target, (TimePlot, SpectrumBars)):
            target.toggle_log()
            self.redraw()
        else:
            self.notify("focus a plot first (tab cycles the panels)", severity="warning")

    def action_smoothing(self) -> None:
        self.smoothing_index = (self.smoothing_index + 1) % len(SMOOTHING)
        beta = SMOOTHING[self.smoothing_index]
        for plot in self.query(TimePlot):
            plot.set_smoothing(beta)
        self.notify("smoothing off" if beta is None else f"smoothing: debiased EMA, decay {beta:g} per evaluation")
        self.redraw()

    def action_help(self) -> None:
        keys = [(b.key_display or b.key, self._describe(b.action)) for b in self._help_bindings()]
        self.push_screen(HelpScreen(keys + EXTRA_KEYS, footer=f"{self.mode}; escape, q or ? closes this"))

    def _help_bindings(self) -> list[Binding]:
        seen: set[str] = set()
        out = []
        for b in self.BINDINGS:
            assert isinstance(b, Binding)
            if b.key not in seen and b.show:
                seen.add(b.key)
                out.append(b)
        return out

    def _describe(self, action: str) -> str:
        f = format_value(self.state.wd_factor)
        return {
            "wd_up": f"multiply weight decay by {f} (run.wd_factor)",
            "wd_down": f"divide weight decay by {f}",
            "wd_exact": "type an exact weight decay",
            "pause": "pause / resume training",
            "resume": "resume training",
            "checkpoint": "write a checkpoint now",
            "toggle_log": "toggle log scale on the focused plot (loss, p-value, accuracy, spectrum)",
            "smoothing": "cycle smoothing: off, debiased EMA 0.6, 0.9 (the raw line stays, faint)",
            "help": "this help",
            "quit": "quit (ctrl+c too): stops training, writes a checkpoint and summary"
                    if self.source.live else "quit (ctrl+c too): stop watching; the run goes on",
        }.get(action, action)

    # -- quitting ------------------------------------------------------------------------------

    def on_unmount(self) -> None:
        # However the app ends (a crash, a signal), the trainer thread must stop: the interpreter waits
        # for it before exiting, and it writes its checkpoint and summary on the way out.
        self.source.stop()

    async def action_quit(self) -> None:
        """q, ctrl+c and ctrl+q: stop the source, wait for the trainer to write its checkpoint and summary,
        then exit. A third press while stopping exits without waiting."""
        self._quit_presses += 1
        if self.stopping:
            if self._quit_presses >= 3:
                self.exit()
            else:
                self.notify("still stopping; press again to exit without waiting", severity="warning")
            return
        self.stopping = True
        self._refresh_bindings_if_changed()
        if self.source.live and not self.state.ended:
            self.notify("stopping: writing checkpoint and summary", timeout=30)
        self.redraw()
        self._stop_and_exit()

    @work(group="quit", exclusive=True, exit_on_error=False)
    async def _stop_and_exit(self) -> None:
        # A worker, so the app keeps taking the trainer's last messages (stop, checkpoint, finish)
        # while it waits.
        try:
            self.source.stop()
            await self.source.wait_stopped()
        finally:
            self.exit()
