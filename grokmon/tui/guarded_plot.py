"""GuardedPlot: a PlotextPlot that says so when it is too small or cannot draw instead of crashing the app, and
puts a caption (legend words, notes) under the plot, outside the data area. The base of every plot panel;
knows nothing about what they plot."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from grokmon.tui.cells import pack


class GuardedPlot(PlotextPlot):
    LABEL: ClassVar[str] = "plot"
    MIN_SIZE: ClassVar[tuple[int, int]] = (16, 5)  # below this the panel says so instead of plotting
    ROOMY = 9  # plot rows an optional caption must leave
    caption_rows = 0  # the caption's rows at the last render (the rows under the plot)

    def placeholder(self) -> Text | None:
        """A message to show instead of the plot (no data yet, say); None to plot."""
        return None

    def caption_groups(self, width: int) -> list[list[Text]]:
        """Caption lines under the plot, as groups of cells (cells.pack) for `width` columns. None by default."""
        return []

    def optional_caption_groups(self, width: int) -> list[list[Text]]:
        """Caption lines shown only when the plot keeps ROOMY rows (a marker legend, say)."""
        return []

    def caption(self, width: int, height: int) -> Text | None:
        groups = self.caption_groups(width)
        extra = [g for g in self.optional_caption_groups(width) if g]
        if extra and height - _lines(pack(groups + extra, width)) >= self.ROOMY:
            groups = groups + extra
        return pack(groups, width) if any(groups) else None

    def fitted_caption(self) -> tuple[Text | None, int]:
        """The caption at the current size and its rows; none when the plot would be left too few rows."""
        width, height = self.size
        caption = self.caption(width, height)
        lines = _lines(caption) if caption is not None else 0
        if height - lines < self.MIN_SIZE[1]:  # no room for both: the plot wins
            return None, 0
        return caption, lines

    def render(self) -> RenderResult:
        if not self._big_enough():
            return Text(f"{self.LABEL}: too small", style="dim")
        note = self.placeholder()
        if note is not None:
            return note
        width, height = self.size
        caption, lines = self.fitted_caption()
        self.caption_rows = lines
        try:
            # As PlotextPlot.render, on the rows left above the caption.
            self.plt.plotsize(width, height - lines)
            self.plt._set_size(width, height - lines)  # noqa: SLF001 -- plotsize clamps to the real terminal
            self.plt.theme(self._get_plotext_theme_name(self.app.theme))
            plot = Text.from_ansi(self.plt.build().removesuffix("\n"))
        except Exception as e:  # noqa: BLE001 -- a plotting glitch must not take the monitor down
            return Text(f"{self.LABEL}: cannot draw ({type(e).__name__}: {e})", style="dim")
        return plot if caption is None else Text("\n").join([plot, caption])

    def _big_enough(self) -> bool:
        w, h = self.MIN_SIZE
        return self.size.width >= w and self.size.height >= h


def _lines(text: Text) -> int:
    return len(text.plain.split("\n")) if text.plain else 0
