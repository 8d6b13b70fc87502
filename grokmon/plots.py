"""Terminal plots drawn without the UI, for `grokmon report` and `grokmon fork`: the only module outside
grokmon/tui/ that imports plotext. Reads plain rows and fork.json content; knows nothing about files.
"""

from __future__ import annotations

import re
from typing import Any

import plotext as plt

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _begin(width: int, height: int, color: bool) -> None:
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("pro" if color else "clear")


def _end(color: bool) -> str:
    text = plt.build()
    return text if color else _ANSI.sub("", text)  # plotext's "clear" theme still emits resets

def run_plot(rows: list[dict[str, Any]], marks: dict[str, int | None], *, width: int = 100,
             height: int = 20, color: bool = True) -> str:
    """val_acc and FSD (both on [-1, 1]) against step, with a vertical line at each known event step."""
    _begin(width, height, color)
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
    return _end(color)


def fork_plot(report: dict[str, Any], *, width: int = 80, height: int = 20, color: bool = True) -> str:
    """Stable branches as one marker, unstable ones as another, the fit as a line through the origin (drawn
    first, so the points stay visible on it)."""
    _begin(width, height, color)
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
    return _end(color)
