"""WeightDecayModal: type an exact weight decay; dismisses with the value, or None on escape.

Validates inline (a finite number >= 0) and says what is wrong under the input. Knows nothing about the run.
"""

from __future__ import annotations

import math

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


def parse_weight_decay(text: str) -> tuple[float | None, str]:
    """(value, "") for a finite number >= 0, else (None, why not)."""
    text = text.strip()
    if not text:
        return None, "type a number, e.g. 0.5 or 1e-2"
    try:
        value = float(text)
    except ValueError:
        return None, f"not a number: {text!r}"
    if not math.isfinite(value):
        return None, "must be finite"
    if value < 0:
        return None, "must be >= 0"
    return value, ""


class WeightDecayModal(ModalScreen[float | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: float | None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="wd-box"):
            yield Label("Set weight decay (enter applies, escape cancels)")
            yield Input(value="" if self.current is None else f"{self.current:g}", id="wd-input",
                        placeholder="a number >= 0")
            yield Static("", id="wd-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        value, error = parse_weight_decay(event.value)
        if value is None:
            self.query_one("#wd-error", Static).update(error)
            return
        self.dismiss(value)

    @on(Input.Changed)
    def clear_error(self) -> None:
        self.query_one("#wd-error", Static).update("")

    def action_cancel(self) -> None:
        self.dismiss(None)
