"""FreqPanel: the Fourier frequencies panel: spectrum bars (W_E by default, `v` cycles the FSD components),
the top 5 k with their share for W_E and W_L = W_out W_U, the key frequencies; the title says which spectrum.
From the latest probed row and the source's spectra. Knows nothing about the source."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from grokmon.tui.spectrum_bars import SpectrumBars
from grokmon.tui.state import RunState


class FreqPanel(Vertical):
    # On the panel, not the bars: the focused bars reach it, and the title (the panel's) follows at once.
    BINDINGS = [Binding("v", "next_component", "Spectrum")]

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._key: object = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="freq-row"):
            yield SpectrumBars(id="spectrum")
            yield Static(top_table(None), id="top-freqs")

    def on_mount(self) -> None:
        self._set_title()

    def on_resize(self, event: events.Resize) -> None:
        self._set_title()

    def _set_title(self) -> None:
        self.border_title = Text(self.query_one(SpectrumBars).describe(self.size.width))

    def update_from(self, state: RunState, key: object, spectra: dict[str, list[float]] | None) -> None:
        """Called by the app's redraw timer; `key` changes when the probe or the spectra did."""
        bars = self.query_one(SpectrumBars)
        if key != self._key:
            self._key = key
            self.query_one("#top-freqs", Static).update(top_table(state.latest_probe))
            bars.set_data(key, spectra, state.latest_probe)
        bars.update_plot()
        self._set_title()

    def action_next_component(self) -> None:
        bars = self.query_one(SpectrumBars)
        if not bars.next_component():
            self.notify("only the top-5 embedding frequencies are known (no spectra.jsonl yet)")
        self._set_title()


def top_table(probe: dict[str, Any] | None) -> Text:
    """The top-5 table: k and share (%) for the embedding W_E and for W_L, side by side; the key frequencies."""
    text = Text()
    text.append(f"{'W_E':>8}  {'W_L':>8}\n", style="bold")
    if probe is None:
        text.append("no probe yet", style="dim")
        return text
    text.append(f"{'k':>3} {'%':>4}  {'k':>3} {'%':>4}\n", style="dim")
    embed, wl = _pairs(probe.get("top_freqs")), _pairs(probe.get("wl_top_freqs"))
    for i in range(max(len(embed), len(wl), 1)):
        left = f"{embed[i][0]:>3} {embed[i][1] * 100:4.1f}" if i < len(embed) else f"{'-':>3}     "
        right = f"{wl[i][0]:>3} {wl[i][1] * 100:4.1f}" if i < len(wl) else f"{'-':>3}"
        text.append(f"{left}  {right}\n")
    keys = probe.get("key_freqs")
    if isinstance(keys, list):  # rows written before key_freqs existed have none: say nothing
        text.append("key freqs " + (" ".join(str(k) for k in keys) if keys else "none yet") + "\n", style="bold")
    text.append("W_L = W_out W_U\n", style="dim")
    text.append(f"step {probe.get('step')}", style="dim")
    return text


def _pairs(value: Any) -> list[tuple[int, float]]:
    out = []
    for item in value or []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], (int, float)):
            out.append((int(item[0]), float(item[1])))
    return out
