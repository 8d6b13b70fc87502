"""Terminal plot of one run's val_acc and FSD against step, for `grokmon report` (plotext lives here).

Reads plain rows; knows nothing about the engine or the run directory's layout.
"""

from __future__ import annotations

import re
from typing import Any

import plotext as plt

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_plot(rows: list[dict[str, Any]], marks: dict[str, int | None], *, width: int = 100,
             height: int = 20, color: bool = True) -> str:
    """val_acc and FSD (both on [-1, 1]) against step, with a vertical line at each known event step."""
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("pro" if color else "clear")
    steps = [r["step"] for r in rows if r.get("val_acc") is not None]
    plt.plot(steps, [r["val_acc"] for r in rows if r.get("val_acc") is not None], label="val_acc",
             marker="braille")
    fsd = [(r["step"], r["fsd"]) for r in rows if r.get("fsd") is not None]
    if fsd:
        plt.plot([s for s, _ in fsd], [v for _, v in fsd], label="FSD", marker="braille")
    for name, step in marks.items():
        if step is not None:
            plt.vline(step)
    labelled = ", ".join(f"{n} {s}" for n, s in marks.items() if s is not None)
    plt.title("val_acc and FSD" + (f"  (lines: {labelled})" if labelled else ""))
    plt.xlabel("step")
    plt.ylim(min(-0.2, min((v for _, v in fsd), default=0.0)), 1.05)
    text = plt.build()
    return text if color else _ANSI.sub("", text)  # plotext's "clear" theme still emits resets
