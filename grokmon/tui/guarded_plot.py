"""GuardedPlot: a PlotextPlot that says so when it is too small or cannot draw, instead of crashing the app.

The base of every plot panel; knows nothing about what they plot.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot


class GuardedPlot(PlotextPlot):
    LABEL: ClassVar[str] = "plot"
    MIN_SIZE: ClassVar[tuple[int, int]] = (16, 5)  # below this the panel says so instead of plotting

    def placeholder(self) -> Text | None:
        """A message to show instead of the plot (no data yet, say); None to plot."""
        return None

    def render(self) -> RenderResult:
        if not self._big_enough():
            return Text(f"{self.LABEL}: too small", style="dim")
        note = self.placeholder()
        if note is not None:
            return note
        try:
            return super().render()
        except Exception as e:  # noqa: BLE001 -- a plotting glitch must not take the monitor down
            return Text(f"{self.LABEL}: cannot draw ({type(e).__name__}: {e})", style="dim")

    def _big_enough(self) -> bool:
        w, h = self.MIN_SIZE
        return self.size.width >= w and self.size.height >= h
