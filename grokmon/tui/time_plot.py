"""TimePlot: the base of the metric-over-step panels (focus, log toggle, smoothing, markers with a row of their
own, legends in the title line and captions under the plot, never over the data). Replots only in
update_from(state), on the app's timer, when data, size or options changed. Knows nothing about the source."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text

from grokmon.tui.cells import cell
from grokmon.tui.series import Ema, downsample_indices, finite_xy, lin_ticks, log10_masked, log_ticks, step_ticks
from grokmon.tui.guarded_plot import GuardedPlot
from grokmon.tui.state import Marker, RunState

MARKER_COLOR = {"intervention": "red", "detector": "magenta", "fsd": "yellow", "grok": "green"}
RAW_COLOR = "gray"  # the unsmoothed line, drawn faint under the EMA
# plotext colour -> rich style, for legends drawn in words next to the plot
STYLE = {"orange": "dark_orange", "gray": "grey50"}
# A line's marker -> the glyphs its legend entry shows, so a legend reads without colour
GLYPH = {"braille": "⠤⠒", "hd": "▄▀", "dot": "••", "x": "xx", "+": "++", "o": "o"}


class Series:
    """One line of a plot: its name, colour and marker (a legend entry)."""

    def __init__(self, name: str, color: str, marker: str = "braille") -> None:
        self.name, self.color, self.marker = name, color, marker

    def legend(self, text: str | None = None) -> Text:
        return cell((GLYPH.get(self.marker, self.marker), STYLE.get(self.color, self.color)), f" {text or self.name}")


class TimePlot(GuardedPlot, can_focus=True):
    """One panel of metrics against step. Subclasses set LABEL and implement `draw`."""

    DEFAULT_LOG: ClassVar[bool] = False
    RIGHT_AXIS: ClassVar[bool] = False

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.log_y = self.DEFAULT_LOG
        self.smoothing: float | None = None
        self.no_color = False
        self._emas: dict[tuple[str, float], Ema] = {}
        self._drawn: tuple[object, ...] | None = None
        self._markers_present: list[tuple[str, str, str]] = []
        self.replots = 0  # how many times the data was re-declared (tests check redraws are not per row)

    def on_mount(self) -> None:
        super().on_mount()
        self.no_color = bool(getattr(self.app, "no_color", False))
        self._set_titles()

    # -- options -------------------------------------------------------------------------------

    def toggle_log(self) -> None:
        self.log_y = not self.log_y
        self._drawn = None
        self._set_titles()

    def set_smoothing(self, beta: float | None) -> None:
        self.smoothing = beta
        self._drawn = None
        self._set_titles()

    def _set_titles(self) -> None:
        title = Text(self.LABEL)  # Text, not a str: a bracket is not markup
        for entry in self.legend():
            title.append("  ")
            title.append_text(entry)
        title.append(f"  [{', '.join(self.title_parts())}]")
        self.border_title = title

    def legend(self) -> list[Text]:
        """The series in words, for the title line (a legend inside the plot would cover the data)."""
        return []

    def title_parts(self) -> list[str]:
        """What the title bracket says: the y scale, then the smoothing (only a top border is drawn)."""
        parts = ["log" if self.log_y else "lin"]
        if self.smoothing:
            parts.append(f"EMA {self.smoothing:g}")
        return parts

    # -- drawing -------------------------------------------------------------------------------

    def update_from(self, state: RunState) -> bool:
        """Re-declare the plot from state if anything it shows changed; True when it did."""
        key = (state.version, state.epoch, self.size.width, self.size.height, self.log_y, self.smoothing)
        if key == self._drawn or not self._big_enough():
            return False
        self._drawn = key
        self.plt.clear_figure()
        self.plt.xaxes(False, False)  # no frame lines under and over the data: the tick labels say enough
        self.plt.yaxes(True, self.RIGHT_AXIS)
        self._markers_present = sorted({(m.tag, m.kind, m.label) for m in state.markers()})
        self.draw(state)
        self.replots += 1
        self.refresh()
        return True

    def draw(self, state: RunState) -> None:
        raise NotImplementedError

    # -- helpers for subclasses ----------------------------------------------------------------

    def train_val_series(self) -> tuple[Series, Series]:
        """train and val: two colours, and without colour two markers (braille dots, half blocks)."""
        return Series("train", "cyan"), Series("val", "orange", "hd" if self.no_color else "braille")

    def draw_train_val(self, state: RunState, metric: str, fixed: tuple[float, float] | None = None) -> None:
        """train_<metric> and val_<metric> against step; `fixed` y bounds apply on the linear scale."""
        steps = state.steps
        train, val = state.column(f"train_{metric}"), state.column(f"val_{metric}")
        idx = downsample_indices(steps, [train, val], self.buckets())
        x_range = self.x_axis(state)
        s_train, s_val = self.train_val_series()
        smooth_train = self.smoothed(f"train_{metric}", train, state.epoch)
        drawn = self.line(steps, train, idx, series=s_train, smooth=smooth_train)
        drawn += self.line(steps, val, idx, series=s_val, smooth=self.smoothed(f"val_{metric}", val, state.epoch))
        room = self.marked(state, x_range)
        _, top = (self.y_axis(drawn, *fixed, headroom=room) if fixed is not None and not self.log_y
                  else self.y_axis(drawn, headroom=room))
        self.draw_markers(state.markers(), x_range, top)

    def marker_caption(self) -> list[Text]:
        """The marker letters on this plot, in words (tag, then what it marks)."""
        out = []
        for tag, kind, label in self._markers_present:
            name = label if kind != "intervention" else label.split()[0]
            out.append(cell((tag, f"bold {MARKER_COLOR.get(kind, '')}".strip()), f" {name}"))
        return list({c.plain: c for c in out}.values())

    def buckets(self) -> int:
        """Downsampling buckets: about one per braille column pair of the plot area."""
        return max(8, self.size.width)

    def smoothed(self, name: str, y: np.ndarray, epoch: int) -> np.ndarray | None:
        """The EMA of a full column under the current smoothing (None when smoothing is off)."""
        if not self.smoothing:
            return None
        ema = self._emas.setdefault((name, self.smoothing), Ema(self.smoothing))
        return ema.update(y, epoch)

    def line(self, x: np.ndarray, y: np.ndarray, idx: np.ndarray, *, series: Series,
             smooth: np.ndarray | None, yside: str = "left", log: bool | None = None) -> list[float]:
        """Draw one series at the kept indices (log10 of it on a log axis), the raw line faint under its
        EMA when smoothing is on. Returns the y values drawn, for the axis range. No plotext label: the
        legend is the title's (plotext puts its own over the data)."""
        color, marker = series.color, series.marker
        yside = 2 if yside == "right" else 1  # plotext: hline's yside="right" lands on the left axis; numbers do not
        log = self.log_y if log is None else log
        tf = log10_masked if log else (lambda v: v)
        drawn: list[float] = []
        raw_x, raw_y = finite_xy(x[idx], tf(y)[idx])
        if smooth is not None:
            if raw_x:
                self.plt.plot(raw_x, raw_y, marker="dot" if self.no_color else marker, color=RAW_COLOR,
                              yside=yside)
            drawn += raw_y
            sx, sy = finite_xy(x[idx], tf(smooth)[idx])
            if sx:
                self.plt.plot(sx, sy, marker=marker, color=color, yside=yside)
            drawn += sy
        elif raw_x:
            self.plt.plot(raw_x, raw_y, marker=marker, color=color, yside=yside)
            drawn += raw_y
        return drawn

    def x_axis(self, state: RunState) -> tuple[float, float]:
        """Common x range (the first row to the latest step or marker) with 0, 2k, 4k-style ticks."""
        steps = state.steps
        lo = float(steps[0]) if len(steps) else 0.0
        hi = max([float(steps[-1]) if len(steps) else 1.0] + [float(m.step) for m in state.markers()])
        hi = max(hi, lo + 1.0)
        self.plt.xlim(lo, hi)
        ticks, labels = step_ticks(lo, hi, max(2, self.size.width // 12))
        self.plt.xticks(ticks, labels)
        return lo, hi

    def y_axis(self, values: list[float], lo: float | None = None, hi: float | None = None,
               yside: str = "left", log: bool | None = None, headroom: bool = False,
               mark: tuple[float, str] | None = None) -> tuple[float, float]:
        """Fix the y range (explicit bounds win over the data's) and, on a log10 axis, label the ticks
        with the values themselves (1e-3, 0.01, ...). With `headroom` the range gets one row more on top,
        for the marker letters: a letter there never covers data. `mark` (y, label) adds a tick and drops
        the ticks that would share its row. Returns (bottom, top) of the range."""
        log = self.log_y if log is None else log
        finite = [v for v in values if np.isfinite(v)]
        y_lo = lo if lo is not None else (min(finite) if finite else 0.0)
        y_hi = hi if hi is not None else (max(finite) if finite else 1.0)
        if y_hi - y_lo < 1e-9:
            y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
        side = 2 if yside == "right" else 1
        rows = self.size.height - self.fitted_caption()[1] - 1  # the x tick labels take the last row
        top = y_lo + (y_hi - y_lo) * (rows - 1) / (rows - 2) if headroom and rows > 3 else y_hi
        self.plt.ylim(y_lo, top, yside=side)
        ticks, labels = (log_ticks if log else lin_ticks)(y_lo, y_hi, max(2, self.size.height // 3))
        if mark is not None:
            row = (top - y_lo) / max(1, rows - 1)  # the y span of one row
            kept = [(t, lab) for t, lab in zip(ticks, labels) if abs(t - mark[0]) >= row]
            ticks, labels = [t for t, _ in kept] + [mark[0]], [lab for _, lab in kept] + [mark[1]]
        if ticks:
            self.plt.yticks(ticks, labels, yside=side)
        return y_lo, top

    def marked(self, state: RunState, x_range: tuple[float, float]) -> bool:
        """Whether any marker falls in the x range (then the plots keep a row on top for their letters)."""
        return any(x_range[0] <= m.step <= x_range[1] for m in state.markers())

    def draw_markers(self, markers: list[Marker], x_range: tuple[float, float], y_top: float) -> None:
        lo, hi = x_range
        for m in markers:
            if lo <= m.step <= hi:
                self.plt.vline(m.step, MARKER_COLOR.get(m.kind))
                self.plt.text(m.tag, m.step, y_top, color=MARKER_COLOR.get(m.kind))
