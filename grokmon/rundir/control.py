"""control.jsonl: how another process (grokmon watch, a script) steers a run, and how the run reads it.

One command per line: {"id": ..., "time": ..., "command": <intervention kind>, "value": ..., "source": ...}.
Knows the intervention registry (what a valid command is), nothing about the engine or the UI.
"""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from pathlib import Path

from grokmon.events import Command
from grokmon.rundir import layout
from grokmon.rundir.readers import JsonlFollower, read_jsonl

MAX_READ_BYTES = 1 << 20  # one poll reads at most this much of the file: a huge file never stalls a step
MAX_LINE_BYTES = 4096  # a command line is ~100 bytes; anything longer is rejected unparsed


def append_command(run_dir: Path, kind: str, value: float | None = None, source: str = "watch") -> str:
    """Append one command to RUN_DIR/control.jsonl (one whole line, one write) and return its id."""
    Command(kind, value, source)  # validate before anything is written
    cid = uuid.uuid4().hex[:12]
    line = json.dumps({"id": cid, "time": round(time.time(), 3), "command": kind, "value": value,
                       "source": source}) + "\n"
    fd = os.open(Path(run_dir) / layout.CONTROL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return cid


class ControlFile:
    """The engine's view of RUN_DIR/control.jsonl: new commands, each applied once; nothing in the file can
    stop or corrupt the run.

    A command's acknowledgement is the Intervention it becomes (source "control:<id>" in events.jsonl); ids
    already acknowledged there, or rejected, are skipped (a resumed run). A line without an id gets one from
    its byte offset ("@<offset>", stable while the file only grows). A line that is not a JSON object, longer
    than MAX_LINE_BYTES, of an unknown command or with a value that is not a finite number in range comes back
    as a rejection message. The file is read incrementally, at most MAX_READ_BYTES per poll, and at most every
    `min_interval_s`, so calling `poll()` every step costs a clock read; a control path that is not a regular
    file (a directory, a FIFO, a device, a symlink loop) is reported once and ignored. With `from_end` (a
    resumed run) only lines appended from now on count.
    """

    def __init__(self, run_dir: Path, min_interval_s: float = 0.25, *, from_end: bool = False) -> None:
        self.path = Path(run_dir) / layout.CONTROL
        self.follower = JsonlFollower(self.path, max_bytes=MAX_READ_BYTES)
        if from_end and self._path_problem() is None and self.path.exists():
            # A resumed run: lines already there were for the process that died (applied ones are replayed
            # from events.jsonl; the rest were never accepted) and are not applied now.
            self.follower.offset = self.path.stat().st_size
        self.min_interval_s = min_interval_s
        self._next = 0.0
        self._reported_path = False
        self._long_reported = 0
        self.seen: set[str] = set()
        for e in read_jsonl(Path(run_dir) / layout.EVENTS):
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
        problem = self._path_problem()
        if problem is not None:
            if self._reported_path:
                return []
            self._reported_path = True
            return [f"{layout.CONTROL}: {problem}; it is ignored (steer with grokmon watch, which appends lines "
                    "to a regular file)"]
        self._reported_path = False
        out: list[Command | str] = []
        for offset, raw in self.follower.read_lines():
            message = self._parse(offset, raw)
            if message is not None:
                out.append(message)
        if self.follower.skipped_long > self._long_reported:
            self._long_reported = self.follower.skipped_long
            out.append(f"@long {layout.CONTROL}: a line longer than {MAX_READ_BYTES} bytes was skipped")
        return out

    def _path_problem(self) -> str | None:
        """Why the control path cannot be read as a file, or None (also None when it does not exist)."""
        try:
            mode = os.stat(self.path).st_mode  # follows symlinks: a loop raises ELOOP
        except FileNotFoundError:
            return None
        except OSError as e:
            return f"cannot be read ({e.strerror or e})"
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
            return f"is {kind}"
        return None

    def _parse(self, offset: int, raw: bytes) -> Command | str | None:
        if len(raw) > MAX_LINE_BYTES:
            cid = f"@{offset}"
            return None if cid in self.seen else self._reject(cid, f"a line of {len(raw)} bytes (at most {MAX_LINE_BYTES})")
        try:
            line = json.loads(raw)
        except (ValueError, RecursionError):
            line = None
        if not isinstance(line, dict):
            cid = f"@{offset}"
            return None if cid in self.seen else self._reject(cid, "not a JSON object")
        given = line.get("id")
        cid = given if isinstance(given, str) and 0 < len(given) <= 64 and given.isprintable() and " " not in given \
            else f"@{offset}"
        if cid in self.seen:
            return None
        self.seen.add(cid)
        try:
            return Command(str(line.get("command"))[:40], line.get("value"), source=f"control:{cid}")
        except ValueError as e:
            return self._reject(cid, str(e), seen=True)

    def _reject(self, cid: str, why: str, seen: bool = False) -> str:
        self.seen.add(cid)
        return f"{cid} {layout.CONTROL}: {why}"[:300]
