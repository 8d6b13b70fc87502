"""LossPlot: train and val loss against step as log10(loss) with value-labelled ticks (plotext 5's own log
scale fails on a second render); loss <= 0 is not drawn, `y` toggles linear. Reads RunState only."""

from __future__ import annotations

from rich.text import Text

from grokmon.tui.state import RunState
from grokmon.tui.time_plot import TimePlot


class LossPlot(TimePlot):
    LABEL = "loss"
    DEFAULT_LOG = True

    def draw(self, state: RunState) -> None:
        self.draw_train_val(state, "loss")

    def legend(self) -> list[Text]:
        return [series.legend() for series in self.train_val_series()]
