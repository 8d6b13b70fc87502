"""Terminal plots drawn without the UI, for `grokmon report` and `grokmon fork`: the only module outside
grokmon/tui/ that imports plotext. Reads plain rows and fork.json content; knows nothing about files.
"""

from __future__ import annotations

import math
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

def step_ticks(lo: float, hi: float, n: int = 5) -> tuple[list[float], list[str]]:
    """Integer step ticks at a round spacing (1, 2 or 5 x 10^k), labelled with k / M suffixes."""
    span = max(hi - lo, 1.0)
    mag = 10 ** int(math.floor(math.log10(span / max(n - 1, 1))))
    candidates = [max(1, int(m * mag)) for m in (1, 2, 5, 10)]
    count = lambda d: int(hi // d) - int(math.ceil(lo / d)) + 1  # noqa: E731
    spacing = min(candidates, key=lambda d: (abs(count(d) - n), -d))  # closest to n ticks; fewer on a tie
    first = int(math.ceil(lo / spacing) * spacing)
    ticks = list(range(first, int(hi) + 1, spacing))
    return [float(t) for t in ticks], [format_steps(t) for t in ticks]


def format_steps(step: int) -> str:
    """1500 -> 1.5k, 2000 -> 2k, 2500000 -> 2.5M, 300 -> 300."""
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(step) >= div:
            return f"{step / div:g}{suffix}"
    return str(step)


def run_plot(rows: list[dict[str, Any]], marks: list[tuple[int, str]], *, width: int = 100,
             height: int = 20, color: bool = True) -> str:
    """val_acc (braille line) and FSD (dots), both on [-1, 1], against step, with a vertical line at each
    marked step. The legend and the marks' names are in the title, so nothing covers the curves."""
    _begin(width, height, color)
    steps = [r["step"] for r in rows if r.get("val_acc") is not None]
    plt.plot(steps, [r["val_acc"] for r in rows if r.get("val_acc") is not None], marker="braille")
    fsd = [(r["step"], r["fsd"]) for r in rows if r.get("fsd") is not None]
    if fsd:
        plt.plot([s for s, _ in fsd], [v for _, v in fsd], marker="dot")
    for step, _ in marks:
        plt.vline(step)
    legend = "val_acc (line)" + (", FSD (dots)" if fsd else ", no FSD measured")
    labelled = ", ".join(f"{name} at {format_steps(step)}" for step, name in sorted(marks))
    plt.title(legend + (f"; lines: {labelled}" if labelled else ""))
    plt.xlabel("step")
    if steps:
        plt.xticks(*step_ticks(min(steps), max(steps)))
    plt.ylim(min(-0.2, min((v for _, v in fsd), default=0.0)), 1.05)
    return _end(color)


def fork_plot(report: dict[str, Any], *, width: int = 80, height: int = 20, color: bool = True) -> str:
    """Stable branches as one marker, unstable ones as another, and the through-origin fit over every branch
    that grokked as a line, drawn first so the points stay visible on it; the key goes under the plot, where
    it covers nothing. No branch grokked: one line, not an empty frame."""
    grokked = [b for b in report["branches"] if b.get("dt") is not None and b["weight_decay"] > 0]
    if not grokked:
        return "dt against 1/lambda: no branch grokked, nothing to plot"
    _begin(width, height, color)
    stable = [b for b in grokked if b["stable"]]
    other = [b for b in grokked if b not in stable]
    fit = (report.get("fits") or {}).get("all_grokked") or {}
    xs_all = [1 / b["weight_decay"] for b in grokked]
    key = []
    if fit.get("C") is not None:
        top = max(xs_all) * 1.05
        xs = [top * i / 40 for i in range(41)]
        plt.plot(xs, [fit["C"] * x for x in xs], marker="braille")
        r2 = fit.get("r2")
        key.append(f"line: dt = {fit['C']:.0f} / lambda" + (f" (R^2 {r2:.3f})" if isinstance(r2, (int, float))
                                                               else ""))
    if stable:
        plt.scatter([1 / b["weight_decay"] for b in stable], [b["dt"] for b in stable], marker="●")
        key.append("● stable")
    if other:
        plt.scatter([1 / b["weight_decay"] for b in other], [b["dt"] for b in other], marker="x")
        key.append("x unstable (left out of the stable fit)")
    plt.title(f"dt against 1/lambda (fork at step {format_steps(report['fork_step'])})")
    plt.xlabel("1 / lambda")
    plt.ylabel("dt (steps)")
    plt.yticks(*step_ticks(0, max(max(b["dt"] for b in grokked), fit.get("C") or 0) * 1.05))
    return _end(color).rstrip("\n") + "\n" + "\n".join(_key_lines(key, width))


# One marker per line, so overlaid lines stay apart without colour (NO_COLOR, a pipe, fork.md).
LINE_MARKERS = ("•", "x", "+", "o", "*", "#", "@", "%", "&", "=")


def _key_lines(entries: list[str], width: int) -> list[str]:
    """'key: a  b  c' wrapped to the plot's width: the legend goes under the plot, never over the lines."""
    lines, line = [], "key:"
    for entry in entries:
        if len(line) + 2 + len(entry) > width and line != "key:":
            lines.append(line)
            line = "    "
        line += "  " + entry
    lines.append(line)
    return lines


def fork_curves_plot(branches: list[tuple[str, float, list[dict[str, Any]]]], fork_step: int, *, width: int = 80,
                     height: int = 18, color: bool = True) -> str:
    """val_acc against steps since the fork, one line (and marker) per branch (name, weight decay, its metrics
    rows), with a key under the plot naming each branch and its weight decay."""
    _begin(width, height, color)
    key, span = [], [0]
    for i, (name, wd, rows) in enumerate(branches):
        pts = [(r["step"] - fork_step, r["val_acc"]) for r in rows
               if r["step"] >= fork_step and isinstance(r.get("val_acc"), (int, float))]
        marker = LINE_MARKERS[i % len(LINE_MARKERS)]
        key.append(f"{marker} {name} (weight decay {wd:g})" + ("" if pts else ": no evaluation yet"))
        if pts:
            plt.plot([x for x, _ in pts], [y for _, y in pts], marker=marker)
            span.append(pts[-1][0])
    plt.title(f"val_acc after the fork at step {format_steps(fork_step)}, one line per branch (key below)")
    plt.xlabel("steps since the fork")
    plt.xticks(*step_ticks(0, max(span)))
    plt.ylim(0, 1.05)
    plt.yticks([0, 0.25, 0.5, 0.75, 1.0])
    return _end(color).rstrip("\n") + "\n" + "\n".join(_key_lines(key, width))


def sweep_lead_plot(report: dict[str, Any], *, width: int = 80, color: bool = True) -> str:
    """sweep.json: each run's lead (t_grok - t_fsd) as a horizontal bar named by the run, in the sweep's
    order top to bottom; runs without a lead are listed under the plot."""
    runs = report["runs"]
    with_lead = [r for r in runs if isinstance(r.get("lead"), (int, float)) and not isinstance(r["lead"], bool)]
    missing = [r["name"] for r in runs if r not in with_lead]
    note = "no lead (needs t_grok and an FSD ceiling): " + ", ".join(missing) if missing else ""
    if not with_lead:
        return "No run has a lead yet: nothing to plot." + (f"\n{note}" if note else "")
    _begin(width, max(8, min(3 * len(with_lead) + 5, 40)), color)
    ordered = list(reversed(with_lead))  # plotext stacks bars bottom-up
    plt.bar([r["name"] for r in ordered], [r["lead"] for r in ordered], orientation="horizontal", width=0.4)
    leads = [r["lead"] for r in with_lead]
    plt.xticks(*step_ticks(min(0, *leads), max(0, *leads)))
    plt.title("lead = t_grok - t_fsd (steps) per run")
    text = _end(color).rstrip("\n")
    return text + (f"\n{note}" if note else "")
