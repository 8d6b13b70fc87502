"""FsdPlot: FSD (left axis) and its p-value (right axis, log10 by default, with the alpha line) against
step, synchronised checkpoints (fsd_sync) marked; probed rows only. Reads RunState columns only."""

from __future__ import annotations

import math

import numpy as np

from grokmon.tui.series import downsample_indices, finite_xy, format_value
from grokmon.tui.state import RunState
from grokmon.tui.time_plot import TimePlot

SYNC_MARKER = "o"


class FsdPlot(TimePlot):
    LABEL = "FSD / p"
    DEFAULT_LOG = True  # `y` toggles the p axis; FSD itself is always linear
    RIGHT_AXIS = True

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.alpha = 0.05
        self.note = ""

    def title_parts(self) -> list[str]:
        parts = [f"p {'log' if self.log_y else 'lin'}", f"alpha {format_value(self.alpha)}", f"{SYNC_MARKER} = sync"]
        if self.smoothing:
            parts.append(f"EMA {self.smoothing:g}")
        return parts + ([self.note] if self.note else [])

    def draw(self, state: RunState) -> None:
        if state.alpha != self.alpha or self._note(state) != self.note:
            self.alpha, self.note = state.alpha, self._note(state)
            self._set_titles()
        fsd_all, p_all = state.column("fsd"), state.column("fsd_p")
        probed = np.isfinite(fsd_all) | np.isfinite(p_all)
        steps, fsd, p = state.steps[probed], fsd_all[probed], p_all[probed]
        sync = state.column("fsd_sync")[probed]
        x_range = self.x_axis(state)
        idx = downsample_indices(steps, [fsd, p], self.buckets())
        drawn = self.line(steps, fsd, idx, label="FSD", color="magenta", log=False,
                          smooth=self.smoothed("fsd", fsd, state.epoch))
        _, top = self.y_axis(drawn, min([-0.2] + drawn), max([1.05] + drawn), log=False)
        sx, sy = finite_xy(steps[idx][sync[idx] == 1.0], fsd[idx][sync[idx] == 1.0])
        if sx:
            self.plt.scatter(sx, sy, marker=SYNC_MARKER, color="green")
        p_drawn = self.line(steps, p, idx, label="p", color="blue", smooth=None, yside="right", log=self.log_y)
        if self.log_y:
            alpha_y = math.log10(self.alpha)
            self.y_axis(p_drawn + [alpha_y], min(p_drawn + [alpha_y]) - 0.2, 0.0, yside="right", log=True)
        else:
            alpha_y = self.alpha
            self.y_axis(p_drawn, 0.0, 1.0, yside="right", log=False)
        self.plt.hline(alpha_y, "blue", yside="right")
        self.draw_markers(state.markers(), x_range, top)

    @staticmethod
    def _note(state: RunState) -> str:
        if state.has("fsd"):
            return ""
        every = state.config.get("metrics", {}).get("metrics_every") if isinstance(state.config.get("metrics"), dict) else None
        return "Fourier metrics off (metrics_every = 0)" if every == 0 else "waiting for the first probe"
