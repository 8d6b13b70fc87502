"""Messages from a run source to the app: one run-directory record each, in its JSON file format.

A live run (engine in a thread worker) and a followed run (`grokmon watch`) post the same messages, so
the app cannot tell them apart. post_message is thread-safe and never blocks the trainer.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class MetricsRow(Message):
    """One metrics.jsonl row: step, wall_s, train/val loss and acc, lr, weight_decay, [Fourier keys]."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__()
        self.row = row


class RunEvent(Message):
    """One events.jsonl record: step, wall_s, time, type (start, resume, intervention, alert,
    checkpoint, finish, failed) and that type's fields (README "The run directory"). `replayed`: read back
    from the run directory's history (a resumed run's earlier process), not happening now."""

    def __init__(self, event: dict[str, Any], replayed: bool = False) -> None:
        super().__init__()
        self.event = event
        self.replayed = replayed


class RunConfig(Message):
    """The run's config.json (posted once, when known: at start, or when a followed run writes it)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
