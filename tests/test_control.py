"""Steering a run from another process: RUN_DIR/control.jsonl, as `grokmon watch` writes it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import write_tiny_profile
from grokmon.events import Command
from grokmon.rundir.control import ControlFile, append_command
from grokmon.rundir.readers import JsonlFollower
from grokmon.rundir.layout import CONTROL as CONTROL_FILE
from grokmon.rundir.readers import read_jsonl
from test_cli import _start

pytestmark = pytest.mark.integration


def test_follower_returns_whole_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    f = JsonlFollower(path)
    assert f.read_new() == []  # not written yet
    path.write_text('{"step": 0}\n{"step": 1')
    assert f.read_new() == [{"step": 0}]
    with path.open("a") as out:
        out.write('00}\n')
    assert f.read_new() == [{"step": 100}]
    path.write_text('{"step": 0}\n')  # rewritten shorter (a resume truncated it)
    assert f.read_new() == [{"step": 0}] and f.rewound


def test_control_file_applies_each_command_once_and_rejects_bad_lines(tmp_path: Path) -> None:
    cid = append_command(tmp_path, "set_weight_decay", 2.0, source="key:w")
    with (tmp_path / CONTROL_FILE).open("a") as f:
        f.write(json.dumps({"id": "bad1", "command": "explode"}) + "\n")
        f.write(json.dumps({"id": "bad2", "command": "set_lr", "value": "fast"}) + "\n")
    control = ControlFile(tmp_path, min_interval_s=0.0)
    got = control.poll()
    assert got[0] == Command("set_weight_decay", 2.0, source=f"control:{cid}")
    assert [g.split(" ")[0] for g in got[1:]] == ["bad1", "bad2"] and all(isinstance(g, str) for g in got[1:])
    assert control.poll() == []
    # A resumed run skips commands its events.jsonl already acknowledges.
    (tmp_path / "events.jsonl").write_text(json.dumps({"type": "intervention", "source": f"control:{cid}"}) + "\n")
    assert all(isinstance(g, str) for g in ControlFile(tmp_path, min_interval_s=0.0).poll())
    with pytest.raises(ValueError):
        append_command(tmp_path, "set_weight_decay", -1.0)


def test_a_headless_run_is_steered_from_another_process(tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path, max_steps=100000)
    out = tmp_path / "run"
    proc = _start(["run", str(profile), "--headless", "--out", str(out)], tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not read_jsonl(out / "metrics.jsonl") and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.05)
        cid = append_command(out, "set_weight_decay", 3.5, source="test")
        with (out / CONTROL_FILE).open("a") as f:
            f.write('{"id": "oops", "command": "grow"}\n')
        ack = None
        while ack is None and time.monotonic() < deadline:
            ack = next((e for e in read_jsonl(out / "events.jsonl")
                        if e["type"] == "intervention" and e["source"] == f"control:{cid}"), None)
            time.sleep(0.05)
        assert ack is not None and (ack["old"], ack["new"]) == (1.0, 3.5)
        append_command(out, "stop", source="test")
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = read_jsonl(out / "events.jsonl")
    assert sum(e.get("source") == f"control:{cid}" for e in events) == 1
    assert any(e["type"] == "alert" and e["kind"] == "command_rejected" and e["message"].startswith("oops")
               for e in events)
    rows = read_jsonl(out / "metrics.jsonl")
    assert all(r["weight_decay"] == 3.5 for r in rows if r["step"] > ack["step"])
    assert all(r["weight_decay"] == 1.0 for r in rows if r["step"] <= ack["step"])
    assert json.loads((out / "summary.json").read_text())["status"] == "stopped"
