"""AccuracyPlot: train and val accuracy against step, y in [0, 1] (log10 on `y`).

Reads RunState columns; knows nothing about the source or the other panels.
"""

from __future__ import annotations

from rich.text import Text

from grokmon.tui.state import RunState
from grokmon.tui.time_plot import TimePlot


class AccuracyPlot(TimePlot):
    LABEL = "accuracy"

    def draw(self, state: RunState) -> None:
        self.draw_train_val(state, "acc", fixed=(0.0, 1.0))

    def legend(self) -> list[Text]:
        return [series.legend() for series in self.train_val_series()]

    def optional_caption_groups(self, width: int) -> list[list[Text]]:
        return [self.marker_caption()]  # the markers' letters in words, here once for every plot
