"""OverlayPlot: one metric of many runs against step on a braille canvas, one colour per run (one glyph per run
without colour), a dotted vertical marker at each run's t_grok tagged with its glyph, no legend over the data
(the compare view's key line names the runs). Draws with numpy: plotext takes ~20x longer for 20 lines."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from grokmon.tui.series import lin_ticks, log10_masked, log_ticks, step_ticks

# Braille dot bits by (row, column) inside a cell of 4 x 2 dots (Unicode's numbering of the 8 dots).
DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)
MARK_CHAR = "┆"
MIN_SIZE = (16, 4)
DIM = Style(dim=True)


@dataclass(frozen=True)
class Line:
    """One run's series: x (steps) and y, aligned; NaN points are skipped. `mark` is a step to draw a vertical
    marker at (t_grok); `glyph` tags the marker and, without colour, draws the line itself."""

    glyph: str
    color: str
    x: np.ndarray
    y: np.ndarray
    mark: int | None = None


def _segments(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dot coordinates of the polyline through (px, py), every segment filled at dot resolution."""
    if len(px) == 1:
        return np.rint(px).astype(np.int64), np.rint(py).astype(np.int64)
    x0, y0, dx, dy = px[:-1], py[:-1], np.diff(px), np.diff(py)
    counts = (np.maximum(np.abs(np.rint(px[1:]) - np.rint(x0)), np.abs(np.rint(py[1:]) - np.rint(y0)))
              .astype(np.int64) + 1)
    seg = np.repeat(np.arange(len(x0)), counts)
    starts = np.cumsum(counts) - counts
    t = (np.arange(int(counts.sum())) - starts[seg]) / np.maximum(counts - 1, 1)[seg]
    return np.rint(x0[seg] + dx[seg] * t).astype(np.int64), np.rint(y0[seg] + dy[seg] * t).astype(np.int64)


def _envelope(col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A series downsampled to the canvas: per dot column its first, lowest, highest and last point, joined
    in that order, so a spike within one column survives and the cost does not grow with the rows drawn.
    `col` must be non-decreasing (steps are)."""
    col = np.rint(col).astype(np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(col)) + 1]
    ends = np.r_[starts[1:], len(col)]
    px = np.repeat(col[starts], 4).astype(float)
    py = np.column_stack([row[starts], np.minimum.reduceat(row, starts), np.maximum.reduceat(row, starts),
                          row[ends - 1]]).ravel()
    return _segments(px, py)


def render_overlay(lines: list[Line], width: int, height: int, *, log_y: bool = False,
                   y_range: tuple[float, float] | None = None, no_color: bool = False,
                   empty: str = "no data yet") -> tuple[list[list[Segment]], list[tuple[str, int]]]:
    """The plot as rows of styled segments (height rows of width cells at most), and the (glyph, step)
    markers it drew.

    Left: y tick labels; bottom row: step ticks; the rest a braille canvas (2 x 4 dots a cell). Where lines
    cross, the cell takes the dots of all of them and the colour of the last one drawn."""
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        return [[Segment("too small"[:width], DIM)]], []
    prepared = []
    for line in lines:
        y = log10_masked(line.y) if log_y else np.asarray(line.y, dtype=float)
        x = np.asarray(line.x, dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            prepared.append((line, x[ok], y[ok]))
    if not prepared:
        return [[Segment(line, DIM)] for line in textwrap.wrap(empty, width)[:height]], []
    x_lo = min(float(x[0]) for _, x, _ in prepared)
    x_hi = max([float(x[-1]) for _, x, _ in prepared]
               + [float(ln.mark) for ln, _, _ in prepared if ln.mark is not None])
    x_hi = max(x_hi, x_lo + 1.0)
    y_lo = min(float(y.min()) for _, _, y in prepared)
    y_hi = max(float(y.max()) for _, _, y in prepared)
    if y_range is not None and not log_y:  # at least this range, so curves keep their place as data arrive
        y_lo, y_hi = min(y_lo, y_range[0]), max(y_hi, y_range[1])
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    ph = height - 1  # the bottom row holds the step labels
    ticks, labels = (log_ticks if log_y else lin_ticks)(y_lo, y_hi, max(2, ph // 3))
    margin = max([len(s) for s in labels] + [1]) + 1
    pw = width - margin
    dw, dh = 2 * pw, 4 * ph

    def to_col(x: np.ndarray) -> np.ndarray:
        return (x - x_lo) / (x_hi - x_lo) * (dw - 1)

    def to_row(y: np.ndarray) -> np.ndarray:
        return np.clip((y_hi - y) / (y_hi - y_lo) * (dh - 1), 0, dh - 1)

    bits = np.zeros((ph, pw), dtype=np.uint8)
    owner = np.full((ph, pw), -1, dtype=np.int64)
    marks = np.full((ph, pw), -1, dtype=np.int64)
    tags: dict[tuple[int, int], int] = {}
    drawn_marks: list[tuple[str, int]] = []
    for i, (line, x, y) in enumerate(prepared):
        cx, cy = _envelope(to_col(x), to_row(y))
        rows, cols = cy // 4, cx // 2
        np.bitwise_or.at(bits, (rows, cols), DOT_BITS[cy % 4, cx % 2])
        owner[rows, cols] = i  # later lines win the colour of a shared cell
        if line.mark is not None and x_lo <= line.mark <= x_hi:
            marks[:, int(to_col(np.array([float(line.mark)]))[0]) // 2] = i
            drawn_marks.append((line.glyph, int(line.mark)))
    # Each marker's glyph goes in the highest cell of its column that no line passes through.
    for c in np.unique(np.nonzero((marks >= 0).any(axis=0))[0]):
        free = np.nonzero(bits[:, c] == 0)[0]
        if len(free):
            tags[(int(free[0]), int(c))] = int(marks[free[0], c])

    styles = [Style(color=None if no_color else ln.color) for ln, _, _ in prepared]
    mark_styles = [Style(color=None if no_color else ln.color, dim=True) for ln, _, _ in prepared]
    tag_styles = [Style(color=None if no_color else ln.color, bold=True) for ln, _, _ in prepared]
    glyphs = [ln.glyph for ln, _, _ in prepared]
    tick_rows = {int(to_row(np.array([t]))[0]) // 4: s for t, s in zip(ticks, labels)}
    out: list[list[Segment]] = []
    for r in range(ph):
        label = tick_rows.get(r)
        row = [Segment(f"{label:>{margin - 1}}┤" if label is not None else " " * (margin - 1) + "│", DIM)]
        run_chars: list[str] = []
        run_style: Style | None = None
        for c in range(pw):
            o, b = int(owner[r, c]), int(bits[r, c])
            if b:
                ch, st = (glyphs[o] if no_color else chr(0x2800 + b)), styles[o]
            elif (r, c) in tags:
                ch, st = glyphs[tags[(r, c)]], tag_styles[tags[(r, c)]]
            elif marks[r, c] >= 0:
                ch, st = MARK_CHAR, mark_styles[int(marks[r, c])]
            else:
                ch, st = " ", None
            if st is not run_style and run_chars:
                row.append(Segment("".join(run_chars), run_style))
                run_chars = []
            run_style = st
            run_chars.append(ch)
        if run_chars:
            row.append(Segment("".join(run_chars), run_style))
        out.append(row)
    out.append([Segment(_step_labels(x_lo, x_hi, margin, pw, to_col), DIM)])
    return out, drawn_marks


def _step_labels(lo: float, hi: float, margin: int, pw: int, to_col) -> str:  # noqa: ANN001
    """The bottom row: step ticks (0, 2k, 4k) under their columns, dropped where they would overlap."""
    row = [" "] * (margin + pw)
    ticks, labels = step_ticks(lo, hi, max(2, pw // 10))
    end = 0
    for t, s in zip(ticks, labels):
        at = margin + int(to_col(np.array([t]))[0]) // 2 - len(s) // 2
        at = min(max(at, margin), margin + pw - len(s))
        if at >= end and at >= 0:
            row[at: at + len(s)] = list(s)
            end = at + len(s) + 1
    return "".join(row)


class OverlayPlot(Widget):
    """A panel of the compare view: `show(lines, key)` on the app's timer redraws only when the key (the
    data and visibility) or the size changed; render_line hands back the drawn rows."""

    DEFAULT_CSS = """
    OverlayPlot {
        width: 1fr;
        height: 1fr;
        border-top: solid $panel-lighten-2;
        border-title-align: left;
    }
    """

    def __init__(self, label: str, *, log_y: bool = False, y_range: tuple[float, float] | None = None,
                 empty: str = "no data yet", id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.label = label
        self.log_y = log_y
        self.y_range = y_range
        self.empty = empty
        self.lines: list[Line] = []
        self.drawn_marks: list[tuple[str, int]] = []  # (glyph, step) of the markers on screen
        self.redraws = 0
        self._drawn_key: object = None
        self._drawn_size: tuple[int, int] | None = None
        self._strips: list[Strip] = []
        self._blank = Strip([])
        self._drawn_theme = ""

    def on_mount(self) -> None:
        self.border_title = Text(f"{self.label} [{'log' if self.log_y else 'lin'}]")

    def show(self, lines: list[Line], key: object, *, empty: str | None = None) -> bool:
        """New lines to draw; `key` identifies them (the same key: nothing to do). True when redrawn."""
        if empty is not None:
            self.empty = empty
        size = (self.size.width, self.size.height)
        if key == self._drawn_key and size == self._drawn_size:
            return False
        self.lines, self._drawn_key = lines, key
        self._draw(size)
        self.refresh()
        return True

    def invalidate(self) -> None:
        """Forget what was drawn: the next `show` draws again even with the same key (the benchmark's full redraw)."""
        self._drawn_key = None

    def _draw(self, size: tuple[int, int]) -> None:
        self._drawn_size = size
        self._drawn_theme = self.app.theme
        no_color = bool(getattr(self.app, "no_color", False))
        rows, self.drawn_marks = render_overlay(self.lines, size[0], size[1], log_y=self.log_y,
                                                y_range=self.y_range, no_color=no_color, empty=self.empty)
        # The widget's own colours under every row, once per draw: rich_style is not cheap per line.
        base = self.rich_style
        self._strips = [Strip(row).adjust_cell_length(size[0]).apply_style(base) for row in rows]
        self._blank = Strip.blank(size[0], base)
        self.redraws += 1

    def render_line(self, y: int) -> Strip:
        """Textual's line API: the drawn rows as they are, with no markup or wrapping pass over them."""
        if (self.size.width, self.size.height) != self._drawn_size or self.app.theme != self._drawn_theme:
            self._draw((self.size.width, self.size.height))  # resized (or restyled) since the last timer redraw
        return self._strips[y] if y < len(self._strips) else self._blank

    @property
    def text(self) -> str:
        """What the panel shows, as plain text (for tests and the benchmark)."""
        return "\n".join(strip.text for strip in self._strips)
