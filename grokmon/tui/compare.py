"""The compare view of `grokmon watch` on several runs or a folder of runs: overlaid plots, a table of the runs,
steering keys for the selected run; Enter opens its single-run view, Escape there comes back. `run_compare` is
the entry point; RunSet follows the runs, the widgets draw them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Static

from grokmon import interventions
from grokmon.events import Command
from grokmon.interventions import Intervention
from grokmon.metrics.runs import why_missing
from grokmon.rundir.control import append_command
from grokmon.rundir.lock import NOT_LIVE
from grokmon.tui.app import INTERVENE, GrokmonApp, registry_bindings
from grokmon.tui.compare_table import CompareTable, glyph
from grokmon.tui.help_screen import HelpScreen
from grokmon.tui.overlay_plot import Line, OverlayPlot
from grokmon.tui.run_set import RunSet, RunTrack
from grokmon.tui.series import format_value
from grokmon.tui.source import WatchSource, exit_on_signals
from grokmon.tui.value_modal import ValueModal

# Plot colours for the runs shown, by slot: distinct on a dark background; a 13th shown run reuses the first.
PALETTE = ("#4ea1ff", "#ff8c3a", "#4cd07d", "#ff5c7a", "#b18cff", "#e8c547", "#37c8c8", "#ff9ad5",
           "#9ccc65", "#c79a6b", "#8fa8ff", "#d0d0d0")
PLOT_HELP = [
    ("val acc, FSD, val loss", "every shown run against step, each in its colour (without colour: drawn with "
                               "its glyph); val loss on a log scale"),
    ("┆ and a glyph", "a run's t_grok (its first val_acc >= 0.95), tagged with the run's glyph"),
    ("key line", "the shown runs' glyphs and names, under the plots"),
]
TABLE_HELP = [
    ("#", "the run's glyph, in its plot colour: ● shown in the plots, ○ hidden"),
    ("name", "the run's folder, relative to the folder in the header"),
    ("task.p, ...", "the config values that differ between the runs; keys that agree run for run share a column "
                    "(task/model/train.seed)"),
    ("wd", "each run's weight decay now, when they differ"),
    ("status, state", "the run's status (running, paused, completed, ..., crashed); live: a process trains it "
                      "(steering keys work), finished: it wrote its summary, dead: its process is gone without one"),
    ("t_fsd, t_grok, lead", "the FSD ceiling (offline rule), the first val_acc >= 0.95, t_grok - t_fsd; · = none "
                            "yet: the line under the table says why for the selected run"),
]
VIEW_HELP = [
    ("space", "show / hide the selected run in the plots"),
    ("a", "show all runs, or none when all are shown"),
    ("enter", "open the selected run's full view (escape there comes back)"),
    ("up / down", "select a run: the steering keys act on it, and only while it is live"),
    ("?", "this help"),
    ("q, ctrl+c", "quit (the runs go on)"),
]


class CompareHelp(HelpScreen):
    """The help modal with the compare view's sections in place of the single-run view's panels."""

    def sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        return [("keys", self.keys), ("plots", PLOT_HELP), ("table", TABLE_HELP)]


class SingleRunApp(GrokmonApp):
    """The single-run view opened from the compare view: escape goes back to the compare view."""

    # Textual merges a subclass's BINDINGS with GrokmonApp's (the registry keys, y, s, ?, q).
    BINDINGS = [Binding("escape", "back", "Back")]

    def action_back(self) -> None:
        self.exit("back")  # type: ignore[arg-type]  # GrokmonApp is an App[None]; run_compare reads "back"


class CompareApp(App[Path | None]):
    """Exits with the selected run's path on Enter (run_compare opens its full view), None on quit."""

    CSS = GrokmonApp.CSS + """
    #cmp-head { height: 1; padding: 0 1; background: $panel; }
    #cmp-plots { height: 45%; min-height: 6; }
    #cmp-plots OverlayPlot { margin-right: 1; }
    #cmp-plots #plot-loss { margin-right: 0; }
    #cmp-key { height: auto; max-height: 2; padding: 0 1; }
    #cmp-detail { height: 1; padding: 0 1; color: $text-muted; }
    Screen.-short #cmp-detail, Screen.-short #cmp-key { display: none; }
    """
    TITLE = "grokmon compare"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (20, "-tall")]  # below 20 rows: plots and table only
    BINDINGS = [
        *registry_bindings(),
        Binding("space", "toggle_shown", "Show"),
        Binding("a", "show_all", "All"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, runs: RunSet, *, selected: Path | None = None, poll_s: float = 0.5,
                 redraw_s: float = 1.0, poll_budget_s: float = 0.05) -> None:
        super().__init__()
        self.runs = runs
        self.poll_s, self.redraw_s, self.poll_budget_s = poll_s, redraw_s, poll_budget_s
        self._restore = selected
        self._dirty = True
        self._catching_up = False
        self._detail_key: object = None

    def compose(self) -> ComposeResult:
        yield Static(id="cmp-head")
        with Horizontal(id="cmp-plots"):
            yield OverlayPlot("val acc", y_range=(0.0, 1.0), id="plot-acc")
            yield OverlayPlot("FSD", y_range=(-0.2, 1.05), id="plot-fsd")
            yield OverlayPlot("val loss", log_y=True, id="plot-loss")
        yield Static(id="cmp-key")
        yield CompareTable(id="cmp-table")
        yield Static(id="cmp-detail")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        exit_on_signals(self)  # a viewer: SIGINT / SIGTERM / SIGHUP leave it cleanly
        self.table.focus()
        self.poll()
        self.set_interval(self.poll_s, self.poll, name="compare-poll")
        self.set_interval(self.redraw_s, self.redraw, name="compare-redraw")
        self.redraw(force=True)

    @property
    def table(self) -> CompareTable:
        return self.query_one(CompareTable)

    def selected(self) -> RunTrack | None:
        path = self.table.selected_path()
        return self.runs.get(path) if path is not None else None

    # -- following and drawing -----------------------------------------------------------------------

    def poll(self) -> None:
        """Read what the runs appended (a bounded slice of time); while a backlog remains, come back soon."""
        if self.runs.poll(self.poll_budget_s):
            self._dirty = True
        if self.runs.backlog and not self._catching_up:
            self._catching_up = True
            self.set_timer(0.02, self._catch_up)

    def _catch_up(self) -> None:
        self._catching_up = False
        self.poll()

    def redraw(self, force: bool = False) -> None:
        """On the timer (and after a key changes what is shown): the table, the plots, the key line, the header;
        each skips its work when what it shows did not change."""
        if not (self._dirty or force):
            return
        self._dirty = False
        tracks = self.runs.tracks
        colors = self._assign_colors(tracks)
        wds = {format_value(t.value("weight_decay")) for t in tracks}
        with self.batch_update():
            self.table.sync(tracks, self.runs.differing(), colors, show_wd=len(wds) > 1)
            if self._restore is not None and self.table.select(self._restore):
                self._restore = None
            self._draw_plots(tracks, colors)
            self.query_one("#cmp-key", Static).update(self._key_line(tracks, colors))
            self.query_one("#cmp-head", Static).update(self._header(tracks))
            self._update_detail()

    def _assign_colors(self, tracks: list[RunTrack]) -> dict[Path, str]:
        """A colour slot per shown run, kept while it stays shown: toggling one run recolours no other."""
        used = {t.slot for t in tracks if t.shown and t.slot is not None}
        for t in tracks:
            if not t.shown:
                t.slot = None
            elif t.slot is None:
                t.slot = next(i for i in range(len(tracks) + 1) if i not in used)
                used.add(t.slot)
        return {t.path: PALETTE[t.slot % len(PALETTE)] for t in tracks if t.slot is not None}

    def _draw_plots(self, tracks: list[RunTrack], colors: dict[Path, str]) -> None:
        selected = self.selected()
        # The selected run is drawn last: where lines cross, its colour is on top.
        shown = sorted((t for t in tracks if t.shown), key=lambda t: (t is selected, t.slot or 0))
        key = tuple((t.path, t.data_version, t.slot, t.t_grok) for t in shown)
        empty = "no run shown: space shows the selected run, a shows all" if tracks else \
            f"no runs yet under {self.runs.base}"
        for plot_id, column, note in (("#plot-acc", "val_acc", None), ("#plot-loss", "val_loss", None),
                                      ("#plot-fsd", "fsd", "no FSD yet (Fourier metrics off or not probed yet)")):
            lines = [Line(glyph(t.number), colors[t.path], t.cols.column("step"), t.cols.column(column), t.t_grok)
                     for t in shown]
            self.query_one(plot_id, OverlayPlot).show(lines, key, empty=note if shown and note else empty)

    def _key_line(self, tracks: list[RunTrack], colors: dict[Path, str]) -> Text:
        shown = sorted((t for t in tracks if t.shown), key=lambda t: t.slot or 0)
        if not shown:
            return Text("no run shown: space shows the selected run, a shows all" if tracks else "", style="dim")
        text = Text()
        for t in shown:
            text.append(f"{glyph(t.number)} {t.name}", style=f"bold {colors[t.path]}")
            text.append("  ")
        text.append("┆ t_grok", style="dim")
        return text

    def _header(self, tracks: list[RunTrack]) -> Text:
        """The counts first (a narrow screen cuts the end), then the folder the names are relative to."""
        counts = [f"{n} {state}" for state in ("live", "finished", "dead", "unknown")
                  if (n := sum(t.liveness == state for t in tracks))]
        text = Text.assemble(("compare ", "bold"), f"{len(tracks)} run{'s' if len(tracks) != 1 else ''}")
        if counts:
            text.append(": " + ", ".join(counts))
        if len(tracks) > 1:
            text.append(f"  ({sum(t.shown for t in tracks)} shown: space, a)", style="dim")
        if self.runs.backlog:
            text.append("  loading…", style="dim")
        text.append(f"  {self.runs.base}", style="dim")
        return text

    def _update_detail(self) -> None:
        """The selected run in one line: where it stands, its hyperparameters, why an event is still missing."""
        track = self.selected()
        key = (track.path, track.version) if track is not None else None
        if key == self._detail_key:
            return
        self._detail_key = key
        if track is None:
            self.query_one("#cmp-detail", Static).update("")
            return
        parts = [f"{glyph(track.number)} {track.name}: {track.display_status}, {track.liveness}",
                 f"wd {format_value(track.value('weight_decay'))}, lr {format_value(track.value('lr'))}"]
        missing = [k for k in ("t_grok", "t_fsd") if (track.t_grok if k == "t_grok" else track.events.get(k)) is None]
        if missing:
            rows = track.cols.rows()
            metrics_on = (track.config or {}).get("metrics", {}).get("metrics_every") != 0
            for k in missing:
                parts.append(f"{k}: " + why_missing(k, rows, track.events, running=track.liveness == "live",
                                                    metrics_on=metrics_on))
        self.query_one("#cmp-detail", Static).update(Text("; ".join(parts)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_detail()
        self._dirty = True  # the next redraw puts the selected run's lines on top
        self.refresh_bindings()  # `p` reads Pause or Resume from the selected run

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click) on a run: leave with its path; run_compare opens its full view."""
        if event.row_key.value is not None:
            self.exit(Path(event.row_key.value))

    # -- view keys -----------------------------------------------------------------------------------

    def action_toggle_shown(self) -> None:
        track = self.selected()
        if track is not None:
            track.shown = not track.shown
            self.redraw(force=True)

    def action_show_all(self) -> None:
        tracks = self.runs.tracks
        show = not all(t.shown for t in tracks)
        for t in tracks:
            t.shown = show
        self.redraw(force=True)

    def action_help(self) -> None:
        track = self.selected()
        factor = format_value(track.wd_factor if track is not None else 2.0)
        rows: list[tuple[str, str]] = []
        for row in interventions.REGISTRY:
            for key in row.keys:
                if key.display not in [r[0] for r in rows]:
                    rows.append((key.display, key.help.replace("{factor}", factor) + " (the selected run)"))
        self.push_screen(CompareHelp(rows + VIEW_HELP, footer="escape, q or ? closes this"))

    def action_quit(self) -> None:  # type: ignore[override]  # App's is async; this one has nothing to wait for
        self.exit(None)

    # -- steering the selected run -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action != INTERVENE:
            return True
        kind = str(parameters[0]) if parameters else ""
        if kind in ("pause", "resume"):  # both rows use `p`: the one that fits the selected run is active
            track = self.selected()
            paused = track.target_paused if track is not None else False
            return kind == ("resume" if paused else "pause")
        return True

    def action_intervene(self, kind: str, scale: int = 0) -> None:
        """A registry key, for the selected run: scale a hyperparameter by its run.wd_factor, ask for an exact
        value, or send a valueless command; refused with a message unless the run is live."""
        row = interventions.BY_KIND.get(kind)
        track = self.selected()
        if row is None or track is None:
            return
        key = next((k for k in row.keys if k.scale == scale), None)
        source = f"key:{key.display if key is not None else kind}"
        if self._refused(track):
            return
        if not row.hyperparameter:
            self._send(track, row, None, source)
        elif scale:
            target = track.target(row.name)
            if target is None:
                self.notify(f"{row.name} of {track.name} is not known yet", severity="warning")
            elif target == 0:
                self.notify(f"{row.name} of {track.name} is 0, so scaling keeps it 0", severity="warning")
            else:
                factor = track.wd_factor ** abs(scale)
                self._send(track, row, target * factor if scale > 0 else target / factor, source)
        else:
            def chosen(value: float | None) -> None:
                if value is not None and not self._refused(track):  # it may have ended while the modal was open
                    self._send(track, row, value, source)

            self.push_screen(ValueModal(row, track.target(row.name)), chosen)

    def _refused(self, track: RunTrack) -> bool:
        """Commands go only to a live run: one queued for a run that is not would be applied by some later
        resume, or never. Reads owner.json and summary.json now, not the last poll's answer."""
        track.refresh_status()
        if track.liveness == "live":
            return False
        why = NOT_LIVE.get(track.liveness, f"is {track.liveness}")
        self.notify(f"not sent: {track.name} {why}; commands go only to a live run", severity="warning",
                    markup=False)
        self._dirty = True
        return True

    def _send(self, track: RunTrack, row: Intervention, value: float | None, source: str) -> None:
        try:
            cmd = Command(row.kind, value, source=source)
        except ValueError as e:  # out of the row's range, e.g. scaled past its top
            self.notify(str(e), severity="warning", markup=False)
            return
        try:
            append_command(track.path, cmd.kind, cmd.value, source=cmd.source)
        except OSError as e:
            self.notify(f"could not send {cmd.kind} to {track.name}: {e.strerror or e}", severity="error",
                        markup=False)
            return
        track.request(cmd)
        shown = "" if cmd.value is None else f" {format_value(cmd.value)}"
        self.notify(f"sent {cmd.kind}{shown} to {track.name}", markup=False)
        self.refresh_bindings()
        self._dirty = True

    def on_key(self, event: events.Key) -> None:
        """No key does anything while there is no run to act on: say so for the steering keys."""
        if self.screen is self.screen_stack[0] and not self.runs.tracks and event.key in _STEERING_KEYS:
            self.notify("no run yet: steering keys act on the selected run", severity="warning")


_STEERING_KEYS = {k for row in interventions.REGISTRY for key in row.keys for k in key.key.split(",")}


def run_compare(paths: list[Path]) -> int:
    """The compare view on run directories and folders of runs; Enter opens a run's full view and Escape there
    comes back (to the same selection), q quits. Returns the exit status."""
    for path in paths:
        if path.exists() and not path.is_dir():
            print(f"grokmon watch: {path}: not a directory (give run directories or folders that hold runs)",
                  file=sys.stderr)
            return 2
    runs = RunSet(paths)
    selected: Path | None = None
    while True:
        app = CompareApp(runs, selected=selected)
        chosen = app.run()
        if app.return_code:
            return app.return_code
        if chosen is None:
            return 0
        single = SingleRunApp(WatchSource(chosen))
        result: Any = single.run()
        if single.return_code:
            return single.return_code
        if result != "back":
            return 0
        selected = chosen
