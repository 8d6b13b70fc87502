"""TimePlot: the base of the metric-over-step panels (focusable, log toggle, smoothing, event markers).
Replots only in update_from(state), called on the app's timer, and only when data, size or options
changed; render() just builds what was declared. Markers come tagged from RunState (an intervention's
letter from its registry row). Knows nothing about the source."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text

from grokmon.tui.series import Ema, downsample_indices, finite_xy, lin_ticks, log10_masked, log_ticks, step_ticks
from grokmon.tui.guarded_plot import GuardedPlot
from grokmon.tui.state import Marker, RunState

MARKER_COLOR = {"intervention": "red", "fsd": "magenta", "grok": "green"}
RAW_COLOR = "gray"  # the unsmoothed line, drawn faint under the EMA


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
        self.border_title = Text(f"{self.LABEL} [{', '.join(self.title_parts())}]")  # Text: no markup

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
        self.plt.xaxes(True, False)  # no top and right frame lines: a row and a column more for data
        self.plt.yaxes(True, self.RIGHT_AXIS)
        self.draw(state)
        self.replots += 1
        self.refresh()
        return True

    def draw(self, state: RunState) -> None:
        raise NotImplementedError

    # -- helpers for subclasses ----------------------------------------------------------------

    def draw_train_val(self, state: RunState, metric: str, fixed: tuple[float, float] | None = None) -> None:
        """train_<metric> and val_<metric> against step; `fixed` y bounds apply on the linear scale."""
        steps = state.steps
        train, val = state.column(f"train_{metric}"), state.column(f"val_{metric}")
        idx = downsample_indices(steps, [train, val], self.buckets())
        x_range = self.x_axis(state)
        drawn = self.line(steps, train, idx, label="train", color="cyan",
                          smooth=self.smoothed(f"train_{metric}", train, state.epoch))
        drawn += self.line(steps, val, idx, label="val", color="orange", marker="hd" if self.no_color else "braille",
                           smooth=self.smoothed(f"val_{metric}", val, state.epoch))
        _, top = self.y_axis(drawn, *fixed) if fixed is not None and not self.log_y else self.y_axis(drawn)
        self.draw_markers(state.markers(), x_range, top)

    def buckets(self) -> int:
        """Downsampling buckets: about one per braille column pair of the plot area."""
        return max(8, self.size.width)

    def smoothed(self, name: str, y: np.ndarray, epoch: int) -> np.ndarray | None:
        """The EMA of a full column under the current smoothing (None when smoothing is off)."""
        if not self.smoothing:
            return None
        ema = self._emas.setdefault((name, self.smoothing), Ema(self.smoothing))
        return ema.update(y, epoch)

    def line(self, x: np.ndarray, y: np.ndarray, idx: np.ndarray, *, label: str, color: str,
             smooth: np.ndarray | None, marker: str = "braille", yside: str = "left",
             log: bool | None = None) -> list[float]:
        """Draw one series at the kept indices (log10 of it on a log axis), the raw line faint under its
        EMA when smoothing is on. Returns the y values drawn, for the axis range."""
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
                self.plt.plot(sx, sy, marker=marker, color=color, label=label, yside=yside)
            drawn += sy
        elif raw_x:
            self.plt.plot(raw_x, raw_y, marker=marker, color=color, label=label, yside=yside)
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
               yside: str = "left", log: bool | None = None) -> tuple[float, float]:
        """Fix the y range (explicit bounds win over the data's) and, on a log10 axis, label the ticks
        with the values themselves (1e-3, 0.01, ...)."""
        log = self.log_y if log is None else log
        finite = [v for v in values if np.isfinite(v)]
        y_lo = lo if lo is not None else (min(finite) if finite else 0.0)
        y_hi = hi if hi is not None else (max(finite) if finite else 1.0)
        if y_hi - y_lo < 1e-9:
            y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
        self.plt.ylim(y_lo, y_hi, yside=yside)
        ticks, labels = (log_ticks if log else lin_ticks)(y_lo, y_hi, max(2, self.size.height // 3))
        if ticks:
            self.plt.yticks(ticks, labels, yside=yside)
        return y_lo, y_hi

    def draw_markers(self, markers: list[Marker], x_range: tuple[float, float], y_top: float) -> None:
        lo, hi = x_range
        for m in markers:
            if lo <= m.step <= hi:
                self.plt.vline(m.step, MARKER_COLOR.get(m.kind))
                self.plt.text(m.tag, m.step, y_top, color=MARKER_COLOR.get(m.kind))
