"""Reading a run directory, live or finished, without locking: whole files, followed files, the last row,
the rows before a step, the JSON records, the config and the checkpoints.

Every reader tolerates a half-written run: a missing file reads as empty, a partial last line (a writer
mid-write) is left for the next read, a line that is not a valid record is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from grokmon.errors import ConfigError
from grokmon.rundir import layout
from grokmon.rundir.records import clean_summary, valid_event, valid_row


class JsonlFollower:
    """Incremental reader of one JSONL file: `read_new()` gives the objects appended since the last call.

    `max_bytes` bounds one call's read (a huge file is taken in pieces, never whole); a line longer than that
    is skipped and counted in `skipped_long`. A file that shrank (a resume rewrote it) is read again from 0
    and `rewound` is set."""

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.offset = 0
        self.max_bytes = max_bytes
        self.rewound = False
        self.skipped_long = 0
        self.skipped_bad = 0
        self._skipping = False  # inside an over-long line: drop bytes up to its newline
        self._seen_size = -1  # the file's size at the last read: an unchanged file is not read again

    def read_new(self) -> list[dict[str, Any]]:
        out = []
        for _, line in self.read_lines():
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):
                self.skipped_bad += 1
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def read_lines(self) -> list[tuple[int, bytes]]:
        """The complete, non-blank lines appended since the last call, each with its byte offset in the file."""
        data = self._chunk()
        if not data:
            return []
        end = data.rfind(b"\n")
        start = self.offset
        if end < 0:
            if self.max_bytes is not None and len(data) >= self.max_bytes:  # one line longer than a read
                if not self._skipping:
                    self.skipped_long += 1
                self._skipping = True
                self.offset += len(data)
                self._seen_size = -1  # more of the file may be waiting
            return []
        self.offset += end + 1
        if self.max_bytes is not None and len(data) >= self.max_bytes:
            self._seen_size = -1  # a bounded read: more of the file may be waiting
        out, pos = [], 0
        for line in data[: end + 1].split(b"\n")[:-1]:
            at, pos = start + pos, pos + len(line) + 1
            if self._skipping:  # the tail of an over-long line
                self._skipping = False
                continue
            if line.strip():
                out.append((at, line))
        return out

    def _chunk(self) -> bytes:
        try:
            size = self.path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return b""
        self.rewound = size < self.offset
        if self.rewound:
            self.offset, self._skipping = 0, False
        elif size == self._seen_size:
            return b""  # nothing new: a partial last line is not re-read on every call
        self._seen_size = size
        want = size - self.offset if self.max_bytes is None else min(size - self.offset, self.max_bytes)
        if want <= 0:
            return b""
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read(want)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON object line of a file (a partial last line is skipped)."""
    return JsonlFollower(path).read_new()


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's usable rows (an integer step), in file order."""
    return [r for r in read_jsonl(Path(run_dir) / layout.METRICS) if valid_row(r)]


def rows_before(run_dir: Path, step: int) -> list[dict[str, Any]]:
    return [r for r in read_rows(run_dir) if r["step"] < step]


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """events.jsonl's usable records (a known type and an integer step)."""
    return [e for e in read_jsonl(Path(run_dir) / layout.EVENTS) if valid_event(e)]


def last_row(path: Path, tail_bytes: int = 65536) -> dict[str, Any] | None:
    """The last complete, usable row of a metrics file, reading only its tail."""
    try:
        with Path(path).open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - tail_bytes))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if valid_row(row):
            return row
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None if it is missing, unreadable, not JSON or not an object."""
    try:
        out = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return out if isinstance(out, dict) else None


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """summary.json checked and typed (records.clean_summary), or None if absent or unusable."""
    return clean_summary(read_json(Path(run_dir) / layout.SUMMARY))


def read_meta(run_dir: Path) -> dict[str, Any]:
    """run.json (or {} for a run that has not written it yet)."""
    return read_json(Path(run_dir) / layout.META) or {}


def read_config(run_dir: Path) -> Any:
    """The run's Config from config.json, strictly (unknown keys, wrong types: ConfigError naming the file)."""
    from grokmon.config import config_from_json

    return config_from_json(Path(run_dir) / layout.CONFIG)


def checkpoints(run_dir: Path) -> dict[int, Path]:
    """step -> checkpoint file, for every complete checkpoint (temporary files are not listed)."""
    found = {}
    try:
        entries = list((Path(run_dir) / layout.CHECKPOINTS).iterdir())
    except OSError:
        return {}
    for f in entries:
        step = layout.checkpoint_step(f.name)
        if step is not None:
            found[step] = f
    return dict(sorted(found.items()))


def load_checkpoint(path: Path) -> Any:
    """A checkpoint as a TrainingState, loaded with weights_only=True (no pickled code runs); a truncated,
    foreign or wrongly shaped file is a ConfigError naming it."""
    import torch

    from grokmon.trainstate import TrainingState

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for a truncated or foreign file
        raise ConfigError(f"not a readable grokmon checkpoint ({type(e).__name__})", source=str(path)) from None
    return TrainingState.from_dict(raw, source=str(path))
