"""HelpScreen: a modal listing every key and what it does; escape, q or ? closes it.

Takes the (key, description) rows from the app; knows nothing about the run.
"""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]], footer: str = "") -> None:
        super().__init__()
        self.keys = keys
        self.footer = footer

    def compose(self) -> ComposeResult:
        table = Table(title="grokmon keys", show_header=False, box=None, padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in self.keys:
            table.add_row(key, description)
        with VerticalScroll(id="help-box"):
            yield Static(table, id="help-table")
            yield Static(self.footer or "escape, q or ? closes this", id="help-footer")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
