"""SpectrumBars: bars of one FSD component's Fourier spectrum (energy share per frequency k): the full
spectrum from the source's spectra.jsonl, else the probe row's top 5. `y` log10; next_component() for
the panel's `v`; describe() names what is shown, for the panel's title. No source knowledge."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.text import Text

from grokmon.tui.guarded_plot import GuardedPlot
from grokmon.tui.series import lin_ticks, log_ticks, nice_step

# spectra.jsonl's component names in words: (wide, narrow)
COMPONENTS = {"embed": ("the embedding (W_E)", "W_E"), "unembed": ("the unembedding (W_U)", "W_U")}


def component_words(name: str, wide: bool) -> str:
    """embed -> "the embedding (W_E)"; blocks.0.mlp_out -> "block 0 mlp_out" (narrow: the names as written)."""
    if name in COMPONENTS:
        return COMPONENTS[name][0 if wide else 1]
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "blocks":
        return f"block {parts[1]} {parts[2]}" if wide else f"{parts[1]}.{parts[2]}"
    return name


class SpectrumBars(GuardedPlot, can_focus=True):
    LABEL = "spectrum"
    MIN_SIZE = (12, 5)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.log_y = False
        self.component = "embed"
        self._data: tuple[list[int], list[float], str] = ([], [], "")
        self._data_key: object = None
        self._names: list[str] = []
        self._spectra: dict[str, list[float]] | None = None
        self._probe: dict[str, Any] | None = None
        self._what = ""
        self._drawn: tuple[object, ...] | None = None
        self.replots = 0

    def toggle_log(self) -> None:
        self.log_y = not self.log_y
        self._drawn = None

    def next_component(self) -> bool:
        """Show the next FSD component's spectrum; False when only one is known."""
        names = self._names
        if len(names) < 2:
            return False
        i = names.index(self.component) if self.component in names else -1
        self.component = names[(i + 1) % len(names)]
        self._compute()
        self.update_plot()
        return True

    def describe(self, width: int) -> str:
        """The panel title: what the bars are, for a panel `width` columns wide."""
        wide = width >= 52
        what = component_words(self.component, wide)
        head = f"Fourier frequencies of {what}" if wide or self.component in COMPONENTS else f"Fourier freqs: {what}"
        return f"{head} [{'log' if self.log_y else 'lin'}{self._what}]"

    def set_data(self, key: object, spectra: dict[str, list[float]] | None, probe: dict[str, Any] | None) -> None:
        """New inputs (the app passes a key that changes when they do): the source's latest spectra, or
        failing that the latest probe row's top_freqs."""
        if key == self._data_key:
            return
        self._data_key, self._spectra, self._probe = key, spectra, probe
        self._names = [k for k, v in (spectra or {}).items() if isinstance(v, list) and k != "step"]
        if self._names and self.component not in self._names:
            self.component = "embed" if "embed" in self._names else self._names[0]
        self._compute()

    def _compute(self) -> None:
        """Shares per k for the current component, from the kept inputs."""
        energy = (self._spectra or {}).get(self.component)
        probe = self._probe
        if isinstance(energy, list) and energy:
            e = np.array([v if isinstance(v, (int, float)) else 0.0 for v in energy], dtype=float)
            total = e.sum()
            shares = (e / total).tolist() if total > 0 else [0.0] * len(e)
            self._data = (list(range(1, len(e) + 1)), shares, "")
        elif probe is not None and probe.get("top_freqs"):
            pairs = [(int(p[0]), float(p[1])) for p in probe["top_freqs"]
                     if isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], (int, float))]
            self._data = ([k for k, _ in pairs], [s for _, s in pairs], "top 5 only")
        else:
            self._data = ([], [], "")
        self._what = f", {self._data[2]}" if self._data[2] else ""
        self._drawn = None

    def update_plot(self) -> bool:
        key = (self._data_key, self.size.width, self.size.height, self.log_y, self.component)
        if key == self._drawn or not self._big_enough():
            return False
        self._drawn = key
        ks, shares, _ = self._data
        plt = self.plt
        plt.clear_figure()
        plt.xaxes(False, False)  # the tick labels are the k axis; a frame line would cost a row
        plt.yaxes(True, False)
        if ks:
            if self.log_y:
                logs = [math.log10(s) if s > 0 else math.nan for s in shares]
                finite = [v for v in logs if math.isfinite(v)] or [-3.0]
                lo = math.floor(min(finite))
                plt.bar(ks, [v if math.isfinite(v) else lo for v in logs], width=0.1, minimum=lo, color="magenta")
                plt.ylim(lo, max(0.0, max(finite)))
                ticks, labels = log_ticks(lo, 0.0, max(2, self.size.height // 3))
                plt.yticks(ticks, labels)
            else:
                plt.bar(ks, shares, width=0.1, color="magenta")
                top = max(shares) * 1.05 if max(shares) > 0 else 1.0
                plt.ylim(0.0, top)
                ticks, labels = lin_ticks(0.0, top, max(2, self.size.height // 3))
                plt.yticks(ticks, labels)
            step = max(1, int(nice_step(max(ks) - 1, max(2, self.size.width // 6))))
            plt.xticks(sorted({1, *range(step, max(ks) + 1, step)}) if len(ks) > 5 else ks)
        self.replots += 1
        self.refresh()
        return True

    def placeholder(self) -> Text | None:
        return None if self._data[0] else Text("no Fourier probe yet", style="dim")

