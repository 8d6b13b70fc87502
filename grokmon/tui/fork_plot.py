"""Terminal plot of a weight-decay fork: dt against 1 / lambda with the fitted line dt = C / lambda
(plotext lives here). Reads fork.json's content; knows nothing about how the branches ran.
"""

from __future__ import annotations

import re
from typing import Any

import plotext as plt

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fork_plot(report: dict[str, Any], *, width: int = 80, height: int = 20, color: bool = True) -> str:
    """Stable branches as one marker, unstable ones as another, the fit as a line through the origin (drawn
    first, so the points stay visible on it)."""
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("pro" if color else "clear")
    grokked = [b for b in report["branches"] if b.get("dt") is not None and b["weight_decay"] > 0]
    stable = [b for b in grokked if b["stable"] and b.get("status", "completed") == "completed"]
    other = [b for b in grokked if b not in stable]
    fit = report.get("fit", {})
    xs_all = [1 / b["weight_decay"] for b in grokked]
    if fit.get("C") is not None and xs_all:
        top = max(xs_all) * 1.05
        xs = [top * i / 40 for i in range(41)]
        plt.plot(xs, [fit["C"] * x for x in xs], marker="braille", label=f"dt = {fit['C']:.0f} / lambda")
    if stable:
        plt.scatter([1 / b["weight_decay"] for b in stable], [b["dt"] for b in stable], marker="●", label="stable")
    if other:
        plt.scatter([1 / b["weight_decay"] for b in other], [b["dt"] for b in other], marker="x",
                    label="excluded")
    r2 = fit.get("r2")
    plt.title(f"dt against 1/lambda (fork at step {report['fork_step']})"
              + (f", R^2 {r2:.3f}" if isinstance(r2, (int, float)) else ""))
    plt.xlabel("1 / lambda")
    plt.ylabel("dt (steps)")
    if not grokked:
        plt.title("no branch grokked: nothing to plot")
    text = plt.build()
    return text if color else _ANSI.sub("", text)
