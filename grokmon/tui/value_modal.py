"""ValueModal: type an exact value for one hyperparameter row of the intervention registry; dismisses with
the value, or None on escape. Validates inline with the row's range and says what is wrong under the input.
Knows the registry row it was given, nothing about the run.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from grokmon.interventions import Intervention


def parse_value(text: str, row: Intervention) -> tuple[float | None, str]:
    """(value, "") for a number within the row's range, else (None, why not, naming the range)."""
    if row.values is None:
        raise ValueError(f"{row.kind} takes no value")  # the app only opens this for hyperparameters
    text = text.strip()
    if not text:
        return None, f"type a number in {row.values}, e.g. 0.5 or 1e-2"
    try:
        number = float(text)
    except ValueError:
        return None, f"not a number: {text!r:.40}; type one in {row.values}"
    try:
        return row.values.check(number, row.name), ""
    except ValueError as e:  # out of the row's range, or not finite: the message names the range
        return None, str(e)


class ValueModal(ModalScreen[float | None]):
    # Its own styles, so a new hyperparameter row needs no stylesheet edit either.
    DEFAULT_CSS = """
    ValueModal {
        align: center middle;
    }
    #value-box {
        width: 60;
        max-width: 100%;
        height: auto;
        border: round $accent;
        padding: 0 1;
        background: $surface;
    }
    #value-error {
        color: $error;
        height: auto;
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, row: Intervention, current: float | None) -> None:
        super().__init__()
        self.row = row
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="value-box"):
            yield Label(f"Set {self.row.name.replace('_', ' ')} (enter applies, escape cancels)")
            yield Input(value="" if self.current is None else f"{self.current:g}", id="value-input",
                        placeholder=f"a number in {self.row.values}")
            yield Static("", id="value-error", markup=False)  # the range reads "[0, 10000]", not a tag

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        value, error = parse_value(event.value, self.row)
        if value is None:
            self.query_one("#value-error", Static).update(error)
            return
        self.dismiss(value)

    @on(Input.Changed)
    def clear_error(self) -> None:
        self.query_one("#value-error", Static).update("")

    def action_cancel(self) -> None:
        self.dismiss(None)
