"""CompareTable: one row per run of the compare view (its glyph in its plot colour, ● shown / ○ hidden, name, the
config values that differ, status, live / finished / dead, step, val_acc, t_fsd, t_grok, lead). Updates only
the cells that changed; the cursor's row is the selected run. Reads RunTracks; knows nothing about steering."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from grokmon.tui.run_set import RunTrack
from grokmon.tui.series import format_value

FIXED_BEFORE = ("#", "name")
FIXED_AFTER = ("status", "state", "step", "val_acc", "t_fsd", "t_grok", "lead")
LIVENESS_STYLE = {"live": "bold green", "finished": "", "dead": "bold red", "waiting": "dim", "unknown": "yellow"}


def glyph(number: int) -> str:
    """A run's one-character tag: 1-9, then A-Z, then a-z; '*' past those."""
    symbols = "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return symbols[number - 1] if 0 < number <= len(symbols) else "*"


def _step(value: object) -> str:
    return str(value) if isinstance(value, int) else "·"


class CompareTable(DataTable):
    DEFAULT_CSS = """
    CompareTable {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    """

    BINDINGS = [Binding("enter", "select_cursor", "Open")]  # DataTable's own enter, labelled for the footer

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._columns: tuple[str, ...] = ()
        self._cells: dict[str, tuple[object, ...]] = {}

    def sync(self, tracks: Sequence[RunTrack], differing: list[tuple[str, tuple[str, ...]]],
             colors: dict[Path, str], show_wd: bool) -> None:
        """Bring the table up to date: new columns rebuild it (keeping the cursor's run), new runs add rows,
        changed cells are updated one by one."""
        columns = (*FIXED_BEFORE, *(label for label, _ in differing), *(("wd",) if show_wd else ()), *FIXED_AFTER)
        restore = None
        if columns != self._columns:
            restore = self.selected_path()
            self.clear(columns=True)
            self._cells = {}
            self._columns = columns
            for label in columns:
                self.add_column(label, key=label)
        for i, track in enumerate(tracks):
            cells = self._row(track, [values[i] for _, values in differing], colors.get(track.path), show_wd)
            key = str(track.path)
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            elif old != cells:
                for label, a, b in zip(columns, old, cells):
                    if a != b:
                        self.update_cell(key, label, b, update_width=True)
            self._cells[key] = cells
        if restore is not None:
            self.select(restore)

    @staticmethod
    def _row(track: RunTrack, config_values: list[str], color: str | None, show_wd: bool) -> tuple[object, ...]:
        tag = glyph(track.number)
        # The run's glyph in its plot colour, and whether it is shown (readable without colour too).
        first = Text(f"{tag}●", style=f"bold {color}") if track.shown and color else Text(f"{tag}○", style="dim")
        events = track.events
        acc = track.last_row.get("val_acc")
        return (
            first, track.name, *config_values,
            *((format_value(track.value("weight_decay")),) if show_wd else ()),
            track.display_status, Text(track.liveness, style=LIVENESS_STYLE.get(track.liveness, "")),
            _step(track.step), f"{acc:.3f}" if isinstance(acc, (int, float)) else "·",
            _step(events.get("t_fsd")), _step(track.t_grok), _step(events.get("lead")),
        )

    def selected_path(self) -> Path | None:
        """The run under the cursor."""
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        except CellDoesNotExist:  # a cursor past the rows while the table is rebuilt
            return None
        return Path(row_key.value) if row_key.value is not None else None

    def select(self, path: Path) -> bool:
        """Move the cursor to a run's row; False when it has none."""
        try:
            index = self.get_row_index(str(path))
        except RowDoesNotExist:  # the run is not in the table (yet)
            return False
        self.move_cursor(row=index)
        return True
