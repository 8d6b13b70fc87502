"""FsdPlot: FSD (left axis, braille) and p(FSD) (right axis, log by default, bullets) against step, the alpha
line on the p(FSD) axis, sync marks (p(FSD) < alpha) from memorisation on; current values and legend in the
title, the permutation null in a caption. Probed rows only. Reads RunState only."""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text

from grokmon.tui.cells import cell
from grokmon.tui.series import downsample_indices, finite_xy, format_value
from grokmon.tui.state import RunState
from grokmon.tui.time_plot import STYLE, Series, TimePlot

SYNC_MARKER = "o"
FSD = Series("FSD", "magenta")  # braille: a thin solid-looking line
P_VALUE = Series("p(FSD)", "blue", "dot")  # bullets: reads apart from FSD's braille without colour
ALPHA_COLOR = "blue"


class FsdPlot(TimePlot):
    LABEL = "FSD"
    DEFAULT_LOG = True  # `y` toggles the p axis; FSD itself is always linear
    RIGHT_AXIS = True

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.alpha = 0.05
        self.n_perm: int | None = None
        self.memorised_at: int | None = None
        self.current: tuple[float | None, float | None] = (None, None)
        self.note = ""

    # -- words ---------------------------------------------------------------------------------

    def _set_titles(self) -> None:
        """The legend and the current values first (what the panel is about), then the p axis scale."""
        fsd, p = self.current
        title = FSD.legend("FSD ")
        title.append("-" if fsd is None else f"{fsd:.2f}", "bold")
        title.append(" ")
        title.append_text(P_VALUE.legend("p(FSD) "))
        title.append(format_value(p), "bold")
        title.append(f" [{', '.join(self.title_parts())}]")
        self.border_title = title

    def title_parts(self) -> list[str]:
        parts = ["log" if self.log_y else "lin"]  # right after p(FSD): its axis
        if self.smoothing:
            parts.append(f"EMA {self.smoothing:g}")
        return parts + ([self.note] if self.note else [])

    def caption_groups(self, width: int) -> list[list[Text]]:
        """The alpha line and the sync mark in words, then the null; fewer words in a narrow panel."""
        alpha = cell(("──", STYLE.get(ALPHA_COLOR, ALPHA_COLOR)), f" alpha {format_value(self.alpha)}")
        sync = "synchronised: p(FSD) < alpha, from memorisation on" if width >= 54 else "sync from memorisation"
        return [[alpha, cell((SYNC_MARKER, "green"), f" {sync}")], [self.null_text()]]

    def optional_caption_groups(self, width: int) -> list[list[Text]]:
        return [[FSD.legend("FSD: left axis"), P_VALUE.legend("p(FSD): right axis")]]

    def null_text(self) -> Text:
        """What p(FSD) is measured against (metrics.n_perm from the config)."""
        n = self.n_perm
        if n is None:
            return Text("p(FSD): output-label permutation null, N permutations, floor 1/(N+1)")
        return Text(f"p(FSD): output-label permutation null, {n} permutations, floor 1/{n + 1}")

    # -- drawing -------------------------------------------------------------------------------

    def draw(self, state: RunState) -> None:
        current = (state.latest("fsd"), state.latest("fsd_p"))
        words = (state.alpha, self._note(state), current, state.n_perm, state.memorised_at)
        if words != (self.alpha, self.note, self.current, self.n_perm, self.memorised_at):
            self.alpha, self.note, self.current, self.n_perm, self.memorised_at = words
            self._set_titles()
        fsd_all, p_all = state.column("fsd"), state.column("fsd_p")
        probed = np.isfinite(fsd_all) | np.isfinite(p_all)
        steps, fsd, p = state.steps[probed], fsd_all[probed], p_all[probed]
        sync = state.column("fsd_sync")[probed]
        x_range = self.x_axis(state)
        idx = downsample_indices(steps, [fsd, p], self.buckets())
        p_drawn = self.line(steps, p, idx, series=P_VALUE, smooth=None, yside="right", log=self.log_y)
        drawn = self.line(steps, fsd, idx, series=FSD, log=False, smooth=self.smoothed("fsd", fsd, state.epoch))
        room = self.marked(state, x_range)
        _, top = self.y_axis(drawn, min([-0.05] + drawn), max([1.05] + drawn), log=False, headroom=room)
        # Synchronised checkpoints count from memorisation on: before it, the output side is barely trained.
        since = math.inf if self.memorised_at is None else self.memorised_at
        marked = (sync[idx] == 1.0) & (steps[idx] >= since)
        sx, sy = finite_xy(steps[idx][marked], fsd[idx][marked])
        if sx:
            self.plt.scatter(sx, sy, marker=SYNC_MARKER, color="green")
        if self.log_y:
            alpha_y = math.log10(self.alpha)
            self.y_axis(p_drawn + [alpha_y], min(p_drawn + [alpha_y]) - 0.2, 0.0, yside="right", log=True,
                        headroom=room, mark=(alpha_y, format_value(self.alpha)))
        else:
            alpha_y = self.alpha
            self.y_axis(p_drawn, 0.0, 1.0, yside="right", log=False, headroom=room,
                        mark=(alpha_y, format_value(self.alpha)))
        # yside=2, not "right": plotext 5.3.2's hline looks a string side up among the x sides (lower,
        # upper), misses, and draws on the left axis, off its range; the number picks the right axis.
        self.plt.hline(alpha_y, ALPHA_COLOR, yside=2)
        self.draw_markers(state.markers(), x_range, top)

    @staticmethod
    def _note(state: RunState) -> str:
        if state.has("fsd"):
            return ""
        return "Fourier metrics off (metrics_every = 0)" if not state.metrics_on else "waiting for the first probe"
