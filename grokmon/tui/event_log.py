"""EventLog: one line per run event (interventions, alerts, detector firings, checkpoints, finish and
failure) plus the UI's own notes (commands sent). Formats events.jsonl records, an intervention in its
registry row's words; knows nothing else.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import RichLog

from grokmon import interventions
from grokmon.tui.series import format_value

STYLE = {"information": "", "warning": "yellow", "error": "bold red", "note": "dim"}


class EventLog(RichLog):
    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, max_lines=2000, wrap=True, markup=False, auto_scroll=True)
        self.lines_text: list[str] = []  # plain copies, for tests and for anything that wants to search
        self.border_title = "events"

    def add_event(self, event: dict[str, Any]) -> str:
        """Log one events.jsonl record; returns its severity (information, warning or error)."""
        message, severity = describe_event(event)
        step = event.get("step")
        self._write(f"{step if step is not None else '-':>7}  {message}", severity)
        return severity

    def note(self, message: str) -> None:
        self._write(f"{'':>7}  {message}", "note")

    def _write(self, line: str, severity: str) -> None:
        self.lines_text.append(line)
        del self.lines_text[:-2000]
        self.write(Text(line, style=STYLE.get(severity, "")))


def describe_event(event: dict[str, Any]) -> tuple[str, str]:
    """The log line of an event, and how loud it is: information, warning or error."""
    kind = event.get("type")
    if kind == "start":
        return f"started on {event.get('device', '?')}", "information"
    if kind == "resume":
        return f"resumed from the checkpoint at step {event.get('step')}", "information"
    if kind == "intervention":
        name, source = str(event.get("name")), str(event.get("source") or "")
        row = interventions.BY_NAME.get(name)
        if row is not None:
            return row.describe(event.get("old"), event.get("new"), source, format_value), "information"
        # A name this build's registry does not know (a run written by another version): say it plainly.
        return name + (f" ({source})" if source else ""), "information"
    if kind == "alert":
        alert, message = event.get("kind", "alert"), event.get("message", "")
        if alert == "fsd_ceiling":  # the engine's message names the rule already; older runs' may not
            label = "FSD detector fired (online rule)"
            return (message if message.startswith(label) else f"{label}: {message}"), "information"
        if alert == "nonfinite_loss":
            return f"non-finite loss: {message}", "error"
        if alert == "command_rejected":
            return f"command rejected: {message}", "warning"
        return f"{alert}: {message}", "warning"
    if kind == "checkpoint":
        return f"checkpoint saved: {event.get('path', '')}", "information"
    if kind == "finish":
        reason = event.get("reason") or ""
        return f"finished: {event.get('status', '?')}" + (f" ({reason})" if reason else ""), "information"
    if kind == "failed":
        return f"FAILED: {event.get('error', 'unknown error')}", "error"
    return f"{kind}: {', '.join(f'{k}={v}' for k, v in event.items() if k not in ('step', 'type'))}", "information"
