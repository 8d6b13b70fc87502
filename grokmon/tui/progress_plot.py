"""ProgressPlot (`m`, in the frequency panel's place): restricted and excluded loss (left, log), Gini of W_E and
W_L and the weight norm over its maximum (right, 0 to 1) against step; key frequencies in the title, each
series with its current value in the caption. Reads RunState only."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from grokmon.tui.series import downsample_indices, format_value
from grokmon.tui.state import RunState
from grokmon.tui.time_plot import Series, TimePlot

# (row key, series, words): distinct markers, so the lines read apart without colour
LEFT = (("restricted_loss", Series("restricted", "cyan"), "restricted loss"),
        ("excluded_loss", Series("excluded", "red", "hd"), "excluded loss"))
RIGHT = (("gini_embed", Series("Gini W_E", "green", "dot"), "Gini W_E"),
         ("gini_wl", Series("Gini W_L", "yellow", "x"), "Gini W_L"),
         ("weight_norm", Series("weight norm", "white", "+"), "weight norm"))


class ProgressPlot(TimePlot):
    LABEL = "progress measures"
    DEFAULT_LOG = True  # `y` toggles the loss axis; the right axis is 0 to 1
    RIGHT_AXIS = True

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.keys_text = ""
        self.values: dict[str, float | None] = {}
        self.empty = "progress measures: waiting for the first Fourier probe"  # shown instead of an empty plot

    def title_parts(self) -> list[str]:
        parts = [f"loss {'log' if self.log_y else 'lin'}"]
        if self.smoothing:
            parts.append(f"EMA {self.smoothing:g}")
        return parts

    def _set_titles(self) -> None:
        title = Text(self.LABEL)
        if self.keys_text:
            title.append(f"  {self.keys_text}", "bold")
        title.append(f"  [{', '.join(self.title_parts())}]")
        self.border_title = title

    def caption_groups(self, width: int) -> list[list[Text]]:
        """Each series with its current value; the weight norm's line is scaled to its maximum."""
        wide = width >= 52

        def entry(key: str, series: Series, words: str) -> Text:
            name = words if wide else words.replace(" loss", "")
            return series.legend(f"{name} {format_value(self.values.get(key))}")

        norm_key, norm_series, norm_words = RIGHT[2]
        norm = entry(norm_key, norm_series, norm_words)
        norm.append(" (line: / its max)")
        return [[entry(*row) for row in LEFT], [entry(*row) for row in RIGHT[:2]] + [norm]]

    def optional_caption_groups(self, width: int) -> list[list[Text]]:
        return [[Text("left axis: the losses"), Text("right axis: Gini and weight norm, 0 to 1")]]

    @staticmethod
    def key_words(state: RunState) -> str:
        """The key frequencies the two losses use (row key key_freqs); rows without it name W_L's top k."""
        keys = state.key_freqs
        if keys is not None:
            return "key freqs " + (" ".join(map(str, keys)) if keys else "none yet")
        probe = state.latest_probe
        top = [p[0] for p in (probe or {}).get("wl_top_freqs") or [] if isinstance(p, (list, tuple)) and p][:3]
        return f"top W_L freqs {' '.join(map(str, top))} (no key_freqs in the rows)" if top else ""

    def draw(self, state: RunState) -> None:
        words = self.key_words(state)
        values = {key: state.latest(key) for key, _, _ in LEFT + RIGHT}
        if words != self.keys_text or values != self.values:
            self.keys_text, self.values = words, values
            self._set_titles()
        cols = {key: state.column(key) for key, _, _ in LEFT + RIGHT}
        probed = np.zeros(len(state.steps), dtype=bool)
        for col in cols.values():
            probed |= np.isfinite(col)
        self.empty = "" if probed.any() else (
            "progress measures: waiting for the first Fourier probe" if state.metrics_on
            else "progress measures: Fourier metrics off (metrics_every = 0)")
        steps = state.steps[probed]
        norm = cols["weight_norm"][probed]
        top = np.nanmax(norm) if np.isfinite(norm).any() else np.nan
        series_y = {key: col[probed] for key, col in cols.items()}
        series_y["weight_norm"] = norm / top if top and np.isfinite(top) and top > 0 else norm * np.nan
        idx = downsample_indices(steps, list(series_y.values()), self.buckets())
        x_range = self.x_axis(state)
        right: list[float] = []
        for key, series, _ in RIGHT:
            right += self.line(steps, series_y[key], idx, series=series, smooth=None, yside="right", log=False)
        left: list[float] = []
        for key, series, _ in LEFT:
            smooth = self.smoothed(key, series_y[key], state.epoch)
            left += self.line(steps, series_y[key], idx, series=series, smooth=smooth)
        room = self.marked(state, x_range)
        _, y_top = self.y_axis(left, headroom=room)
        self.y_axis(right, 0.0, 1.0, yside="right", log=False, headroom=room)
        self.draw_markers(state.markers(), x_range, y_top)

    def placeholder(self) -> Text | None:
        return Text(self.empty, style="dim") if self.empty else None
