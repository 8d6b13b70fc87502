"""AccuracyPlot: train and val accuracy against step, y in [0, 1] (log10 on `y`).

Reads RunState columns; knows nothing about the source or the other panels.
"""

from __future__ import annotations

from grokmon.tui.state import RunState
from grokmon.tui.time_plot import TimePlot


class AccuracyPlot(TimePlot):
    LABEL = "accuracy"

    def draw(self, state: RunState) -> None:
        self.draw_train_val(state, "acc", fixed=(0.0, 1.0))
