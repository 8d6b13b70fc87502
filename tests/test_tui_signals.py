"""The live app on a real pseudo-terminal: a dropped SSH link (SIGHUP) or a kill (SIGTERM) stops cleanly."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import write_tiny_profile
from grokmon.rundir.readers import read_jsonl

pytestmark = pytest.mark.integration


def _drain(fd: int) -> None:
    while select.select([fd], [], [], 0)[0]:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_signal_to_the_app_checkpoints_and_writes_the_summary(tmp_path: Path, sig: int, code: int) -> None:
    profile = write_tiny_profile(tmp_path, max_steps=1_000_000)
    out = tmp_path / "run"
    pid, fd = pty.fork()
    if pid == 0:  # the app on a real terminal
        os.environ.update(OMP_NUM_THREADS="1", TERM="xterm-256color")
        os.execvp(sys.executable, [sys.executable, "-m", "grokmon", "run", str(profile), "--out", str(out)])
    try:
        deadline = time.monotonic() + 120
        while not any(e.get("type") == "checkpoint" for e in read_jsonl(out / "events.jsonl")):
            assert time.monotonic() < deadline, "no checkpoint appeared"
            _drain(fd)
            time.sleep(0.05)
        os.kill(pid, sig)
        status = None
        while status is None and time.monotonic() < deadline:
            _drain(fd)
            done, status_word = os.waitpid(pid, os.WNOHANG)
            status = os.waitstatus_to_exitcode(status_word) if done == pid else None
            time.sleep(0.05)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)
    assert status == code
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    name = signal.Signals(sig).name
    stops = [e for e in read_jsonl(out / "events.jsonl") if e["type"] == "intervention" and e["name"] == "stop"]
    assert [e["source"] for e in stops] == [f"signal:{name}"]
    assert (out / "checkpoints" / f"step_{summary['steps']:08d}.pt").exists()
