"""StatusBar: the run's latest values as labelled numbers in a fixed order, packed to the width (run, values,
then its events in metrics.runs' words: the online detector and the offline ceiling apart, a missing one says
why). Formats RunState; knows nothing about the source beyond the mode and the run directory."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from grokmon.tui.cells import cell, pack
from grokmon.tui.series import format_value
from grokmon.tui.state import RunState, hyperparameters, short_name

VALUE = "bold"


WIDE = 100  # from this width the run and the values get a line each; below, they share three or four


class StatusBar(Widget):
    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.groups: list[list[Text]] = [[Text("waiting for the run")]]

    def update_from(self, state: RunState, mode: str, run_dir: Path | str, stopping: bool = False) -> None:
        groups = status_groups(state, mode, run_dir, stopping)
        words_changed = [[c.plain for c in g] for g in groups] != [[c.plain for c in g] for g in self.groups]
        self.groups = groups
        self.refresh(layout=words_changed)  # new words may need another line

    def render(self) -> Text:
        return status_lines(self.groups, self.size.width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(status_lines(self.groups, width).plain.split("\n")))

    @property
    def text(self) -> str:
        """The lines as shown at the current width (plain)."""
        return status_lines(self.groups, self.size.width).plain


def status_lines(groups: list[list[Text]], width: int) -> Text:
    """The groups (run, values, events, [error]) packed at `width`: from WIDE on, the run and the values
    start a line each, so the values are on the second line whatever the phase; below, they share lines."""
    if width < WIDE and len(groups) > 1:
        groups = [groups[0] + groups[1], *groups[2:]]
    return pack(groups, width)


def status_text(state: RunState, mode: str, run_dir: Path | str = "", stopping: bool = False,
                width: int = 118) -> Text:
    """The status lines at `width` columns."""
    return status_lines(status_groups(state, mode, run_dir, stopping), width)


def status_groups(state: RunState, mode: str, run_dir: Path | str, stopping: bool = False) -> list[list[Text]]:
    """The cells in their fixed order, in groups: the run, its latest values, its events, an error."""
    groups = [_run(state, mode, run_dir, stopping), _values(state), _events(state)]
    if state.error is not None:
        groups.append([cell(("error: ", "bold red"), (state.error, "bold red"))])
    return groups


def _run(state: RunState, mode: str, run_dir: Path | str, stopping: bool) -> list[Text]:
    cells: list[Text] = []
    marker = _marker(state, stopping)
    if marker is not None:
        label, style = marker
        badge = cell((f" {label} ", style))
        if state.finished is not None:  # how it ended, next to the badge
            badge.append(f" {state.finished}" + (f" ({state.finish_reason})" if state.finish_reason else ""), VALUE)
        cells.append(badge)
    step = "-" if state.step is None else str(state.step)
    cells.append(cell("step ", (step + (f"/{state.max_steps}" if state.max_steps else ""), VALUE)))
    if not state.ended:  # a speed and an ETA mean nothing once the run is over
        cells.append(cell((_speed(state.steps_per_s), VALUE), " steps/s"))
    cells.append(cell("elapsed ", (format_duration(state.wall_s), VALUE)))
    if not state.ended:
        cells.append(cell("ETA ", (format_duration(eta_s(state)), VALUE)))
    if mode != "live":  # training here is the usual case; following another process's run is worth saying
        cells.append(cell((mode, "bold italic")))
    cells.append(cell("phase ", (state.phase or "-", VALUE)))
    if state.precision != "fp32":  # fp32 is the usual case; another training precision is worth saying
        cells.append(cell("precision ", (state.precision, VALUE)))
    cells.append(cell("run dir ", (str(run_dir), VALUE)))
    return cells


def _values(state: RunState) -> list[Text]:
    row = state.last_row or {}
    cells = [cell(f"{split} acc ", (_acc(row.get(f"{split}_acc")), VALUE),
                  " loss ", (format_value(_num(row.get(f"{split}_loss"))), VALUE)) for split in ("train", "val")]
    fsd, p = state.latest("fsd"), state.latest("fsd_p")
    fsd_cell = cell("FSD ", ("-" if fsd is None else f"{fsd:.2f}", VALUE), " p(FSD) ", (format_value(p), VALUE))
    sync = state.latest("fsd_sync")
    if sync is not None and state.memorised_at is not None:  # sync counts from memorisation on (help)
        fsd_cell.append("  ")
        fsd_cell.append("synchronised" if sync == 1.0 else "not synchronised", "bold" if sync == 1.0 else "")
    cells.append(fsd_cell)
    for row_ in hyperparameters():
        hp = cell(f"{short_name(row_.name)} ", (format_value(state.value(row_.name)), VALUE))
        pending = state.pending(row_.name)
        if pending is not None:
            hp.append(f" (-> {format_value(pending)} pending)", "italic")
        cells.append(hp)
    if state.schedule_note is not None:
        cells.append(cell((f"({state.schedule_note})", "italic")))
    if state.pending_pause is not None:
        cells.append(cell((f"({'pause' if state.pending_pause else 'resume'} pending)", "italic")))
    return cells


def _events(state: RunState) -> list[Text]:
    """t_grok, the online detector, the offline ceiling and the lead, known or why not (metrics.runs)."""
    events = state.events()
    cells: list[Text] = []
    t_grok = events.get("t_grok")
    if t_grok is not None:
        cells.append(cell("grokked at ", (str(t_grok), "bold green"), " (t_grok)"))
    else:
        cells.append(cell("t_grok: ", (state.why("t_grok"), "italic")))
    detector, ceiling = state.t_fsd_online, events.get("t_fsd")
    why_detector, why_ceiling = state.why("t_fsd_online"), state.why("t_fsd")
    if detector is None and ceiling is None and why_detector == why_ceiling:
        cells.append(cell("FSD detector (online) and t_fsd (offline): ", (why_detector, "italic")))
    else:
        if detector is not None:
            cells.append(cell("FSD detector fired at ", (str(detector), "bold magenta"), " (online)"))
        else:
            cells.append(cell("FSD detector (online): ", (why_detector, "italic")))
        if ceiling is not None:
            note = "" if t_grok is not None else ", provisional: not grokked yet"
            cells.append(cell("t_fsd ", (str(ceiling), "bold yellow"), f" (offline ceiling{note})"))
        else:
            cells.append(cell("t_fsd (offline): ", (why_ceiling, "italic")))
    if events.get("lead") is not None:
        cells.append(cell("lead ", (str(events["lead"]), VALUE), " (t_grok - t_fsd)"))
    return cells


def eta_s(state: RunState) -> float | None:
    """Seconds to the step limit at the current steps/s; None until known, and once the run is not training."""
    if state.status != "running" or not state.steps_per_s or not state.max_steps or state.step is None:
        return None
    return max(0, state.max_steps - state.step) / state.steps_per_s


def _speed(v: float | None) -> str:
    return "-" if not v else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _acc(v: object) -> str:
    n = _num(v)
    return "-" if n is None or n != n else f"{n:.3f}"


def _marker(state: RunState, stopping: bool) -> tuple[str, str] | None:
    status = state.status
    if status == "failed":
        return "FAILED", "bold reverse red"
    if status == "finished":
        return "FINISHED", "bold reverse"
    if stopping:
        return "STOPPING", "bold reverse yellow"
    if status == "paused":
        return "PAUSED", "bold reverse yellow"
    if status == "waiting":
        return "WAITING", "reverse"
    return None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
