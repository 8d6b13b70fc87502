"""Following a growing JSONL file, and the control.jsonl channel that steers a run from another process.

A follower returns only complete lines, so a writer caught mid-line is read on the next poll; a file that
does not exist yet reads as empty. Knows nothing about the engine or the UI.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

from grokmon.events import Command

CONTROL_FILE = "control.jsonl"


class JsonlFollower:
    """Incremental reader of one JSONL file: `read_new()` gives the objects appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.rewound = False  # set when the file shrank (a resume rewrote it) and was read again from 0

    def read_new(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        self.rewound = size < self.offset
        if self.rewound:
            self.offset = 0
        if size == self.offset:
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return []  # only a partial line so far
        self.offset += end + 1
        out = []
        for line in data[: end + 1].splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out


def append_command(run_dir: Path, kind: str, value: float | None = None, source: str = "watch") -> str:
    """Append one command to RUN_DIR/control.jsonl (one whole line, one write) and return its id."""
    Command(kind, value, source)  # validate before anything is written
    cid = uuid.uuid4().hex[:12]
    line = json.dumps({"id": cid, "time": round(time.time(), 3), "command": kind, "value": value,
                       "source": source}) + "\n"
    fd = os.open(Path(run_dir) / CONTROL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return cid


class ControlFile:
    """The engine's view of RUN_DIR/control.jsonl: new commands, each applied once.

    A command's acknowledgement is the Intervention it becomes (source "control:<id>" in events.jsonl);
    ids already acknowledged there (a resumed run) are skipped. Polls the file at most every
    `min_interval_s`, so calling `poll()` every step costs a clock read.
    """

    def __init__(self, run_dir: Path, min_interval_s: float = 0.25) -> None:
        self.follower = JsonlFollower(Path(run_dir) / CONTROL_FILE)
        self.min_interval_s = min_interval_s
        self._next = 0.0
        self.seen: set[str] = set()
        events = JsonlFollower(Path(run_dir) / "events.jsonl").read_new()
        for e in events:
            src = str(e.get("source", ""))
            if src.startswith("control:"):
                self.seen.add(src.split(":", 1)[1])
            if e.get("kind") == "command_rejected":
                self.seen.add(str(e.get("message", "")).split(" ", 1)[0])

    def poll(self) -> list[Command | str]:
        """New commands, or a rejection message (a string that starts with the line's id) per bad line."""
        now = time.monotonic()
        if now < self._next:
            return []
        self._next = now + self.min_interval_s
        out: list[Command | str] = []
        for line in self.follower.read_new():
            cid = str(line.get("id") or "?")
            if cid in self.seen:
                continue
            self.seen.add(cid)
            value = line.get("value")
            try:
                if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
                    raise ValueError(f"value must be a finite number, got {value!r}")
                out.append(Command(str(line.get("command")), None if value is None else float(value),
                                   source=f"control:{cid}"))
            except ValueError as e:
                out.append(f"{cid} {CONTROL_FILE}: {e}")
        return out
