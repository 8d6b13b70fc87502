"""Publication figures for `grokmon report --save` (matplotlib, the optional `plot` extra, imported only when a
figure is drawn): a run's accuracy, loss and FSD panels; a fork's dt against 1/lambda; a sweep's leads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grokmon.errors import ConfigError

FORMATS = (".png", ".svg", ".pdf")
PLOT_HINT = "needs matplotlib: pip install 'grokmon[plot]'"
MARK_COLORS = {"t_fsd": "tab:green", "t_grok": "tab:red"}


def check_target(path: Path) -> None:
    """The figure's file type, and matplotlib, before any work (a one-line error otherwise)."""
    if Path(path).suffix.lower() not in FORMATS:
        raise ConfigError(f"expected a file name ending in {', '.join(FORMATS)}", source=str(path))
    _mpl()


def _mpl() -> Any:
    try:
        import matplotlib.figure
    except ImportError:
        raise ConfigError(PLOT_HINT, source="--save") from None
    return matplotlib


def _new_figure(width: float, height: float, rows: int = 1, sharex: bool = True) -> tuple[Any, Any]:
    """A pyplot-free Figure (no GUI backend, no global state) in a plain, journal-like style."""
    _mpl()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(direction="out", labelsize=8)
        ax.grid(True, color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
    return fig, axes


def _step_axis(ax: Any) -> None:
    """Integer step ticks, 1.5k / 2M style."""
    from matplotlib.ticker import EngFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10], integer=True))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def _save(fig: Any, path: Path) -> Path:
    """Write the figure; SVG keeps its text as text and PDF embeds TrueType fonts, so labels stay editable
    (and journals' font checks pass)."""
    import matplotlib

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
            fig.savefig(path, dpi=200)
    except OSError as e:
        raise ConfigError(f"cannot write the figure: {e.strerror or e}", source=str(path)) from None
    return path


def _series(rows: list[dict[str, Any]], key: str, positive: bool = False) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)
           and (not positive or r[key] > 0)]  # a log axis cannot show 0
    return [s for s, _ in pts], [v for _, v in pts]


def run_figure(report: dict[str, Any], path: Path) -> Path:
    """Accuracy (train, val), loss (train, val; log scale), FSD with its p-value on a second log axis and the
    alpha line; vertical markers at t_fsd, t_grok and every intervention, named along the top."""
    rows = report["rows"]
    if not rows:
        raise ConfigError("has no evaluations yet: nothing to draw", source=report["run_dir"])
    cfg = report["config"]
    fig, (acc, loss, fsd) = _new_figure(7.0, 7.5, rows=3)
    for key, label, color in (("train_acc", "train", "tab:blue"), ("val_acc", "val", "tab:orange")):
        acc.plot(*_series(rows, key), color=color, linewidth=1.3, label=label)
    acc.set_ylim(-0.03, 1.03)
    acc.set_ylabel("accuracy")
    for key, label, color in (("train_loss", "train", "tab:blue"), ("val_loss", "val", "tab:orange")):
        loss.plot(*_series(rows, key, positive=True), color=color, linewidth=1.3, label=label)
    loss.set_yscale("log")
    loss.set_ylabel("loss")
    handles = acc.get_legend_handles_labels()[0]
    steps, values = _series(rows, "fsd")
    if steps:
        fsd.plot(steps, values, color="tab:purple", linewidth=1.3, label="FSD")
        fsd.set_ylabel("FSD", color="tab:purple")
        pval = fsd.twinx()
        pval.spines[["top"]].set_visible(False)
        p_steps, p_values = _series(rows, "fsd_p", positive=True)
        pval.plot(p_steps, p_values, color="0.45", linewidth=0.9, marker=".", markersize=2, label="FSD p-value")
        alpha = cfg.metrics.alpha
        pval.set_yscale("log")
        pval.set_ylim(min(p_values + [alpha]) / 2, max(p_values + [alpha]) * 3)  # the alpha line inside
        pval.axhline(alpha, color="0.45", linestyle="--", linewidth=0.8)
        pval.annotate(f"alpha = {alpha:g}", xy=(1.0, alpha), xycoords=("axes fraction", "data"),
                      xytext=(-2, 2), textcoords="offset points", ha="right", va="bottom", fontsize=7, color="0.35")
        pval.set_ylabel("p-value (log)", color="0.35")
        pval.tick_params(labelsize=8)
        handles += fsd.get_legend_handles_labels()[0] + pval.get_legend_handles_labels()[0]
    else:
        fsd.text(0.5, 0.5, "no FSD measured (metrics.metrics_every = 0)", transform=fsd.transAxes, ha="center",
                 va="center", fontsize=9, color="0.4")
        fsd.set_ylabel("FSD")
    fsd.set_xlabel("step")
    _step_axis(fsd)
    # One key for all panels, below them: train and val share their colours across panels, and nothing
    # inside the axes covers a curve.
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=len(handles),
               frameon=False, fontsize=8)
    marks = [(report[k], k, MARK_COLORS[k], "--") for k in ("t_fsd", "t_grok") if report.get(k) is not None]
    for e in report.get("interventions", []):
        marks.append((e["step"], f"{e['name']} {e.get('new'):g}" if isinstance(e.get("new"), (int, float))
                      else e["name"], "0.3", ":"))
    for step, label, color, style in marks:
        for ax in (acc, loss, fsd):
            ax.axvline(step, color=color, linestyle=style, linewidth=0.9)
        acc.annotate(label, xy=(step, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                     textcoords="offset points", rotation=90, ha="center", va="bottom", fontsize=7, color=color)
    name = Path(report["run_dir"]).name or report["run_dir"]
    fig.suptitle(f"{name}: {cfg.task.op} mod {cfg.task.p}, {cfg.model.n_layers} layer(s), {report['status']}",
                 fontsize=10)
    return _save(fig, path)


def fork_figure(report: dict[str, Any], path: Path) -> Path:
    """fork.json: dt against 1/lambda per branch (stable: dots, unstable: crosses), each labelled with its
    weight decay, and dt = C / lambda through the origin fitted over every grokked branch (solid) and over the
    stable ones (dashed, when they differ)."""
    fig, (ax,) = _new_figure(5.5, 4.2)
    grokked = [b for b in report["branches"] if b.get("dt") is not None and b["weight_decay"] > 0]
    stable = [b for b in grokked if b["stable"]]
    other = [b for b in grokked if b not in stable]
    fits = report.get("fits") or {}
    top = max((1 / b["weight_decay"] for b in grokked), default=0.0) * 1.08
    for subset, style in (("all_grokked", "-"), ("stable", "--")):
        fit = fits.get(subset) or {}
        if fit.get("C") is None or (subset == "stable" and fit.get("n") == (fits.get("all_grokked") or {}).get("n")):
            continue
        r2 = fit.get("r2")
        ax.plot([0, top], [0, fit["C"] * top], color="0.4", linewidth=1.0, linestyle=style,
                label=f"{subset.replace('_', ' ')}: dt = {fit['C']:.0f} / λ"
                + (f" (R² {r2:.3f})" if isinstance(r2, (int, float)) else ""))
    if stable:
        ax.scatter([1 / b["weight_decay"] for b in stable], [b["dt"] for b in stable], color="tab:blue", s=24,
                   zorder=3, label="stable")
    if other:
        ax.scatter([1 / b["weight_decay"] for b in other], [b["dt"] for b in other], color="tab:red", marker="x",
                   s=28, zorder=3, label="unstable")
    for b in grokked:
        ax.annotate(f"λ={b['weight_decay']:g}", xy=(1 / b["weight_decay"], b["dt"]), xytext=(4, -8),
                    textcoords="offset points", fontsize=7, color="0.3")
    if not grokked:
        ax.text(0.5, 0.5, "no branch grokked", transform=ax.transAxes, ha="center", va="center", color="0.4")
    else:
        ax.legend(loc="upper left", frameon=False, fontsize=8)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("1 / λ (weight decay)")
    ax.set_ylabel("dt = t_grok - fork step (steps)")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(steps=[1, 2, 2.5, 5, 10], integer=True))
    ax.set_title(f"weight-decay fork at step {report['fork_step']} (λ0 = {report['lambda0']:g})", fontsize=10)
    return _save(fig, path)


def sweep_figure(report: dict[str, Any], path: Path) -> Path:
    """sweep.json: the lead (t_grok - t_fsd) of each run as a horizontal bar; runs without one are named."""
    runs = report["runs"]
    with_lead = [r for r in runs if isinstance(r.get("lead"), (int, float))]
    fig, (ax,) = _new_figure(6.0, max(2.5, 0.3 * len(with_lead) + 1.5), sharex=False)
    names = [r["name"] for r in with_lead]
    ax.barh(range(len(names)), [r["lead"] for r in with_lead],
            color=["tab:blue" if r["lead"] >= 0 else "tab:red" for r in with_lead])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()  # the sweep's order, top to bottom
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel("lead = t_grok - t_fsd (steps)")
    _step_axis(ax)
    missing = [r["name"] for r in runs if r not in with_lead]
    title = f"sweep of {report.get('profile')}: {len(with_lead)} of {len(runs)} runs with a lead"
    if isinstance(report.get("mean_lead"), (int, float)):
        title += f", mean {report['mean_lead']:.0f}"
    ax.set_title(title, fontsize=10)
    if missing:
        ax.annotate("no lead: " + ", ".join(missing)[:120], xy=(0, 0), xycoords="figure fraction", xytext=(4, 4),
                    textcoords="offset points", fontsize=7, color="0.4")
    return _save(fig, path)
