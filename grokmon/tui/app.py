"""GrokmonApp: lays out the panels, turns keys into Commands (the intervention registry gives the keys, footer
labels, help and disabled states), folds the source's messages into a RunState, redraws on a timer (never per
message). Knows the source only by its small interface; never changes a hyperparameter, shows the run's events."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from textual import events, work
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import ContentSwitcher, Footer

from grokmon import interventions
from grokmon.events import Command
from grokmon.interventions import Intervention
from grokmon.tui.accuracy_plot import AccuracyPlot
from grokmon.tui.event_log import EventLog
from grokmon.tui.freq_panel import FreqPanel
from grokmon.tui.fsd_plot import FsdPlot
from grokmon.tui.help_screen import HelpScreen
from grokmon.tui.loss_plot import LossPlot
from grokmon.tui.messages import MetricsRow, RunConfig, RunEvent
from grokmon.tui.progress_plot import ProgressPlot
from grokmon.tui.series import SMOOTHING, format_value
from grokmon.tui.spectrum_bars import SpectrumBars
from grokmon.tui.state import EVENT_MARKERS, RunState, hyperparameters, short_name
from grokmon.tui.status_bar import StatusBar
from grokmon.tui.time_plot import TimePlot
from grokmon.tui.value_modal import ValueModal

INTERVENE = "intervene"  # the one action every registry key runs: intervene(kind, scale)
VIEW_KEYS: list[tuple[Binding, str]] = [  # the app's own keys and their help ("" for quit: it depends on the mode)
    (Binding("y", "toggle_log", "Log"),
     "toggle log scale on the focused plot (loss, p(FSD), accuracy, spectrum, progress losses)"),
    (Binding("s", "smoothing", "Smooth"), "cycle smoothing: off, debiased EMA 0.6, 0.9 (the raw line stays, faint)"),
    (Binding("m", "toggle_progress", "Progress"),
     "swap the Fourier frequencies panel for the progress measures over time (restricted and excluded loss, "
     "Gini of W_E and W_L, weight norm) and back"),
    (Binding("question_mark", "help", "Help", key_display="?"), "this help"),
    (Binding("q", "quit", "Quit"), ""),
    (Binding("ctrl+c", "quit", "Quit", show=False, priority=True), ""),
]
EXTRA_KEYS = [  # keys not in the app's BINDINGS, for the help screen
    ("tab, shift+tab", "move focus between the panels (the focused one has a heavy top border)"),
    ("v", "on the Fourier frequencies panel: show the next FSD component's spectrum (embed, blocks..., unembed)"),
    ("ctrl+q", "quit, the same way as q"),
    ("arrows, pgup, pgdn", "in this help: scroll"),
]


def registry_bindings() -> list[Binding]:
    """A binding per key of every intervention registry row, running intervene(kind, scale).

    In the footer a hyperparameter's scaling keys share one label, its short name ("w W wd"), and its
    exact-value key is left to the help: at 80 columns the footer holds the keys used most, not all."""
    out: list[Binding] = []
    for row in interventions.REGISTRY:  # the module attribute, read per call: a row patched in is seen
        label = short_name(row.name)
        for key in row.keys:
            action = f"{INTERVENE}({row.kind!r}, {key.scale})"
            if row.hyperparameter:
                verb = "up" if key.scale > 0 else "down" if key.scale < 0 else "="
                out.append(Binding(key.key, action, f"{label} {verb}", key_display=key.display,
                                   show=key.scale != 0, group=Binding.Group(label) if key.scale else None))
            else:
                out.append(Binding(key.key, action, row.name.capitalize(), key_display=key.display))
    return out


def app_bindings() -> list[Binding]:
    """The app's BINDINGS: the registry's keys, then the view keys."""
    return [*registry_bindings(), *(binding for binding, _ in VIEW_KEYS)]


def _intervention_args(parameters: tuple[object, ...]) -> tuple[str, int]:
    """(kind, scale) from the parameters of an intervene(...) action."""
    kind = str(parameters[0]) if parameters else ""
    scale = parameters[1] if len(parameters) > 1 else 0
    return kind, scale if isinstance(scale, int) else 0


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
    CSS_PATH = Path(__file__).with_name("grokmon.tcss")  # absolute: a subclass elsewhere (tests) finds it too
    # The registry's scaling keys are grouped per hyperparameter in the footer ("w W wd"), and the compact
    # footer puts no gap after a group's label ("wdl L lr"): give grouped keys and labels a key's one-cell gap.
    CSS = "Footer.-compact FooterLabel, Footer.-compact FooterKey.-grouped { margin: 0 1 0 0; }"
    TITLE = "grokmon"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (20, "-medium"), (32, "-tall")]
    # Textual merges BINDINGS when the class is created: a registry row added at import time is bound; one
    # patched in later (a test) needs the class built after it, e.g. a subclass with BINDINGS = app_bindings().
    BINDINGS = app_bindings()

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
            with ContentSwitcher(initial="freqs", id="freq-views"):
                yield FreqPanel(id="freqs")
                yield ProgressPlot(id="progress")
        yield EventLog(id="log")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(AccuracyPlot).focus()
        self.set_interval(self.redraw_interval, self.redraw)
        self.redraw()
        self.source.start(self)

    @property
    def mode(self) -> str:
        return "live" if self.source.live else "watching"

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
        if message.replayed:  # a resumed run's history: logged, not news
            self._refresh_bindings_if_changed()
            return
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
            self.query_one(StatusBar).update_from(state, self.mode, self.source.run_dir, self.stopping)
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

    def blocked_reason(self, kind: str, scale: int = 0) -> str | None:
        """Why the key for a registry command (and scale) does nothing now, or None when it works."""
        row = interventions.BY_KIND.get(kind)
        if row is None:
            return None
        if self.stopping:
            return "stopping: interventions are off"
        if self.state.status == "failed":
            return "the run failed: interventions are off"
        if self.state.status == "finished":
            return f"the run has finished ({self.state.finished}): interventions are off"
        if row.hyperparameter and scale and self.state.target(row.name) is None:
            return f"{row.name} is not known yet (no config or metrics row)"
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action != INTERVENE:
            return True
        kind, scale = _intervention_args(parameters)
        if kind in ("pause", "resume") and kind != ("resume" if self.state.target_paused else "pause"):
            return False  # `p` shows as Pause or Resume, never both
        if self.blocked_reason(kind, scale):
            return None  # greyed out in the footer; on_key says why
        return True

    def on_key(self, event: events.Key) -> None:
        """A key whose action is greyed out does nothing in Textual; say why instead."""
        if self.screen is not self.screen_stack[0]:
            return
        active = self.screen.active_bindings.get(event.key)
        if active is not None and not active.enabled:
            _, action, parameters = parse_action(active.binding.action)
            reason = self.blocked_reason(*_intervention_args(parameters)) if action == INTERVENE else None
            if reason:
                self.notify(reason, severity="warning")

    def _refresh_bindings_if_changed(self) -> None:
        key = (self.state.status, self.state.target_paused, self.stopping,
               tuple(self.state.target(row.name) is None for row in hyperparameters()))
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

    def action_intervene(self, kind: str, scale: int = 0) -> None:
        """A registry key: scale a hyperparameter's target by run.wd_factor (scale +1 / -1), ask for an exact
        value (a hyperparameter's scale 0), or send a valueless command as is."""
        row = interventions.BY_KIND.get(kind)
        if row is None:
            return
        key = next((k for k in row.keys if k.scale == scale), None)
        source = f"key:{key.display if key is not None else kind}"
        if not row.hyperparameter:
            self._send_checked(row, None, source)
        elif scale:
            self._scale(row, scale, source)
        else:
            self._ask_value(row, source)

    def _scale(self, row: Intervention, scale: int, source: str) -> None:
        target = self.state.target(row.name)
        if target is None:
            return  # blocked_reason greys the key out; this is a direct call
        if target == 0:
            exact = next((k.display for k in row.keys if k.scale == 0), None)
            how = f": press {exact} to type a value" if exact else ""
            self.notify(f"{row.name} is 0, so scaling keeps it 0{how}", severity="warning")
            return
        factor = self.state.wd_factor ** abs(scale)
        self._send_checked(row, target * factor if scale > 0 else target / factor, source)

    def _ask_value(self, row: Intervention, source: str) -> None:
        def chosen(value: float | None) -> None:
            if value is None:
                return
            reason = self.blocked_reason(row.kind)  # the run may have ended while the modal was open
            if reason:
                self.notify(reason, severity="warning")
            else:
                self._send_checked(row, value, source)

        self.push_screen(ValueModal(row, self.state.target(row.name)), chosen)

    def _send_checked(self, row: Intervention, value: float | None, source: str) -> None:
        try:
            cmd = Command(row.kind, value, source=source)
        except ValueError as e:  # out of the row's range, e.g. scaled past its top: say so, send nothing
            self.notify(str(e), severity="warning", markup=False)
            return
        self.send(cmd)

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

    def action_toggle_progress(self) -> None:
        """m: the progress measures in the frequency panel's place, or back."""
        views = self.query_one("#freq-views", ContentSwitcher)
        had_focus = self.focused is not None and views in self.focused.ancestors_with_self
        views.current = "progress" if views.current == "freqs" else "freqs"
        if had_focus:  # the focused panel went out of sight: focus its replacement
            shown = views.query_one(f"#{views.current}")
            (shown if shown.can_focus else shown.query_one(SpectrumBars)).focus()
        self.call_after_refresh(self.redraw)  # once the shown view has its size

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_rows(), self.marker_rows(),
                                    footer=f"{self.mode}: {self.source.run_dir}"))

    @staticmethod
    def marker_rows() -> list[tuple[str, str]]:
        """(letter, what it marks) for every marker the plots can draw: the registry's, then the run's events."""
        rows = [(row.marker, f"{row.name} changed: an intervention (a key, the control file or a schedule)")
                for row in interventions.REGISTRY if row.marker]
        return rows + [(tag, words) for _, tag, _, words in EVENT_MARKERS]

    def help_rows(self) -> list[tuple[str, str]]:
        """(key, what it does) for every key: the registry's rows' keys, the view keys, then the rest."""
        factor = format_value(self.state.wd_factor)
        rows: list[tuple[str, str]] = []
        seen: set[str] = set()
        for row in interventions.REGISTRY:
            for key in row.keys:
                if key.display not in seen:  # pause and resume share `p`: the first row's help covers both
                    seen.add(key.display)
                    rows.append((key.display, key.help.replace("{factor}", factor)))
        for binding, text in VIEW_KEYS:
            if binding.show:
                rows.append((binding.key_display or binding.key, text or self._quit_help()))
        return rows + EXTRA_KEYS

    def _quit_help(self) -> str:
        if self.source.live:
            return "quit (ctrl+c too): stops training, writes a checkpoint and summary"
        return "quit (ctrl+c too): stop watching; the run goes on"

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
