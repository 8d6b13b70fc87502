"""StatusBar: step, steps/s, elapsed, mode; every registry hyperparameter (wd, lr, ... with a pending
request), phase, t_fsd, t_grok; a PAUSED / FINISHED / FAILED / STOPPING marker. Formats RunState; knows
nothing about the source beyond the mode text."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from grokmon.tui.series import format_value
from grokmon.tui.state import RunState, hyperparameters, short_name


class StatusBar(Static):
    def update_from(self, state: RunState, mode: str, stopping: bool = False) -> None:
        self.update(status_text(state, mode, stopping))


def status_text(state: RunState, mode: str, stopping: bool = False) -> Text:
    text = Text(no_wrap=False, overflow="fold")
    marker = _marker(state, stopping)
    if marker:
        label, style = marker
        text.append(f" {label} ", style=style)
        text.append(" ")
    step = "-" if state.step is None else str(state.step)
    text.append(f"step {step}" + (f"/{state.max_steps}" if state.max_steps else ""), style="bold")
    text.append(f"  {state.steps_per_s:.1f} steps/s" if state.steps_per_s else "  - steps/s")
    text.append(f"  elapsed {format_duration(state.wall_s)}")
    text.append(f"  {mode}", style="dim")
    text.append("\n")
    for i, row in enumerate(hyperparameters()):
        text.append(f"{'  ' if i else ''}{short_name(row.name)} {format_value(state.value(row.name))}")
        pending = state.pending(row.name)
        if pending is not None:
            text.append(f" (-> {format_value(pending)} pending)", style="italic")
    if state.schedule_note is not None:
        text.append(f"  ({state.schedule_note})", style="italic")
    if state.pending_pause is not None:
        text.append(f"  ({'pause' if state.pending_pause else 'resume'} pending)", style="italic")
    text.append(f"  phase {state.phase or '-'}")
    if state.t_fsd_online is not None:
        text.append(f"  t_fsd {state.t_fsd_online}", style="bold magenta")
    if state.t_grok is not None:
        text.append(f"  t_grok {state.t_grok}", style="bold green")
    if state.error is not None:
        text.append(f"\nerror: {state.error}", style="bold red")
    elif state.finished is not None:
        reason = f" ({state.finish_reason})" if state.finish_reason else ""
        text.append(f"  finished: {state.finished}{reason}", style="bold")
    return text


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
