"""Ownership of a run directory: one writer at a time, and what readers can tell about it.

The writer holds an exclusive OS lock (flock on `.lock`, released by the kernel when the process dies, however
it dies) and keeps `owner.json` up to date: pid, host, start time and a heartbeat every HEARTBEAT_S seconds.
Readers never take the lock: they judge liveness from owner.json (and the pid, on the same host).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from grokmon.errors import ConfigError
from grokmon.rundir import layout

HEARTBEAT_S = 5.0  # how often a live writer touches owner.json
STALE_S = 60.0  # a heartbeat older than this, from another host, means the writer is gone


class RunBusy(ConfigError):
    """Another live process owns the run directory."""


class RunLock:
    """The exclusive writer lock of one run directory (create it with `acquire`)."""

    def __init__(self, run_dir: Path, fd: int) -> None:
        self.run_dir = Path(run_dir)
        self._fd = fd
        self._stop = threading.Event()
        self._started = time.time()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(cls, run_dir: Path, what: str = "run") -> "RunLock":
        """Take the lock or raise a one-line ConfigError naming the owner. Creates the directory."""
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(run_dir / layout.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(f"cannot write the run directory: {e.strerror or e}", source=str(run_dir)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            owner = describe_owner(read_owner(run_dir))
            raise RunBusy(f"is being written by another process ({owner}); a run directory has one "
                              f"writer at a time: `grokmon watch {run_dir}` follows it", source=str(run_dir)) from None
        lock = cls(run_dir, fd)
        try:
            lock._write_owner()
        except OSError as e:
            lock.release()
            raise ConfigError(f"cannot write the run directory: {e.strerror or e}", source=str(run_dir)) from None
        return lock

    def start_heartbeat(self) -> None:
        """Refresh owner.json every HEARTBEAT_S seconds from a daemon thread until release()."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="grokmon-heartbeat", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write_owner()
            except OSError:
                pass  # a full disk: the lock itself still says we are alive

    def _write_owner(self, released: bool = False) -> None:
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": round(self._started, 3),
                 "heartbeat": round(time.time(), 3)}
        if released:
            owner["released"] = owner["heartbeat"]
        path = self.run_dir / layout.OWNER
        tmp = self.run_dir / f".{layout.OWNER}.tmp"
        tmp.write_text(json.dumps(owner) + "\n")
        os.replace(tmp, path)

    def release(self) -> None:
        """Stop the heartbeat, mark owner.json released (a process that dies leaves it unmarked: readers then
        see its pid gone or its heartbeat stale) and drop the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._fd >= 0:
            try:
                self._write_owner(released=True)
            except OSError:
                pass  # a full disk: the released lock is what counts
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def read_owner(run_dir: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads((Path(run_dir) / layout.OWNER).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def owner_alive(owner: dict[str, Any] | None, now: float | None = None) -> bool:
    """Whether the process in owner.json is still there: on this host, its pid exists and its heartbeat is
    recent; on another host (a shared filesystem), its heartbeat is recent."""
    if owner is None or "released" in owner:
        return False
    beat = owner.get("heartbeat")
    if not isinstance(beat, (int, float)):
        return False
    fresh = (now if now is not None else time.time()) - beat < STALE_S
    if owner.get("host") != socket.gethostname():
        return fresh
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or a pid no process can have
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return fresh


def describe_owner(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "owner unknown"
    beat = owner.get("heartbeat")
    ago = f", heartbeat {time.time() - beat:.0f} s ago" if isinstance(beat, (int, float)) else ""
    return f"pid {owner.get('pid')} on {owner.get('host')}{ago}"


NO_OWNER = ("has no owner.json (a run directory from a grokmon without ownership records, or one not yet "
            "claimed), so whether a process trains it is unknown")
NOT_LIVE = {"finished": "has finished", "dead": "is not running (its process is gone)", "waiting": "has not started",
            "unknown": NO_OWNER}  # per liveness other than live: why a command cannot go to the run


def liveness(run_dir: Path, summary_status: str | None) -> str:
    """live (a writer owns it now), finished (it ended and wrote its summary), dead (its writer is gone
    without a summary: killed, crashed, or the machine went down) or unknown (no summary and no owner.json
    at all: NO_OWNER)."""
    if owner_alive(read_owner(run_dir)):
        return "live"
    if summary_status is not None:
        return "finished"
    return "dead" if (Path(run_dir) / layout.OWNER).exists() else "unknown"


def run_status(run_dir: Path, summary: dict[str, Any] | None) -> str:
    """One word for a run: its summary's status when it ended; "running" while a writer owns it; "crashed"
    when the writer is gone without a summary (killed, crashed, machine down); "unknown" without a summary
    or an owner.json (NO_OWNER)."""
    return run_state(run_dir, summary)[0]


def run_state(run_dir: Path, summary: dict[str, Any] | None) -> tuple[str, str]:
    """(run_status, liveness) of a run, from one read of its owner.json."""
    state = liveness(run_dir, summary["status"] if summary is not None else None)
    if state in ("live", "unknown"):
        return ("running" if state == "live" else "unknown"), state
    return (summary["status"] if summary is not None else "crashed"), state
