"""FreqPanel: the spectrum bars beside a table of the embedding's and W_L's top 5 frequencies and shares,
from the latest probed row (keys top_freqs, wl_top_freqs). Knows nothing about the source."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from grokmon.tui.spectrum_bars import SpectrumBars
from grokmon.tui.state import RunState


class FreqPanel(Horizontal):
    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._key: object = None

    def compose(self) -> ComposeResult:
        yield SpectrumBars(id="spectrum")
        yield Static(top_table(None), id="top-freqs")

    def update_from(self, state: RunState, key: object, spectra: dict[str, list[float]] | None) -> None:
        """Called by the app's redraw timer; `key` changes when the probe or the spectra did."""
        bars = self.query_one(SpectrumBars)
        if key != self._key:
            self._key = key
            self.query_one("#top-freqs", Static).update(top_table(state.latest_probe))
            bars.set_data(key, spectra, state.latest_probe)
        bars.update_plot()


def top_table(probe: dict[str, Any] | None) -> Text:
    """The top-5 table: k and share (%) for the embedding and for W_L, side by side."""
    text = Text()
    text.append(f"{'embed':>8}  {'W_L':>8}\n", style="bold")
    if probe is None:
        text.append("no probe yet", style="dim")
        return text
    text.append(f"{'k':>3} {'%':>4}  {'k':>3} {'%':>4}\n", style="dim")
    embed, wl = _pairs(probe.get("top_freqs")), _pairs(probe.get("wl_top_freqs"))
    for i in range(max(len(embed), len(wl), 1)):
        left = f"{embed[i][0]:>3} {embed[i][1] * 100:4.1f}" if i < len(embed) else f"{'-':>3}     "
        right = f"{wl[i][0]:>3} {wl[i][1] * 100:4.1f}" if i < len(wl) else f"{'-':>3}"
        text.append(f"{left}  {right}\n")
    text.append(f"step {probe.get('step')}", style="dim")
    return text


def _pairs(value: Any) -> list[tuple[int, float]]:
    out = []
    for item in value or []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], (int, float)):
            out.append((int(item[0]), float(item[1])))
    return out
