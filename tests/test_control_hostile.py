"""control.jsonl from a hostile or careless writer: nothing in it can stop or corrupt a run, every line is
applied once or rejected with an event, and reading it costs a bounded amount per poll."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from grokmon.config import Config
from grokmon.events import Command
from grokmon.rundir import layout
from grokmon.rundir.control import MAX_LINE_BYTES, MAX_READ_BYTES, ControlFile
from grokmon.rundir.readers import read_events, read_rows, read_summary
from grokmon.session import RunSession


def _write(path: Path, *lines: str) -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines))


@pytest.mark.unit
def test_every_bad_line_is_rejected_with_its_reason_and_good_ones_are_applied(tmp_path: Path) -> None:
    control = tmp_path / layout.CONTROL
    _write(control,
           json.dumps({"id": "huge", "command": "set_weight_decay", "value": 10 ** 400}),
           json.dumps({"id": "nan", "command": "set_lr", "value": float("nan")}),
           json.dumps({"id": "neg", "command": "set_weight_decay", "value": -1}),
           json.dumps({"id": "str", "command": "set_lr", "value": "1e-3"}),
           json.dumps({"id": "grow", "command": "grow"}),
           "not json at all", "[1, 2, 3]", "{" * 100_000,
           json.dumps({"command": "pause"}), json.dumps({"command": "resume"}),  # no ids: both applied
           json.dumps({"id": "ok", "command": "set_weight_decay", "value": 2}))
    got = ControlFile(tmp_path, min_interval_s=0).poll()
    commands = [g for g in got if isinstance(g, Command)]
    rejected = [g for g in got if isinstance(g, str)]
    assert [c.kind for c in commands] == ["pause", "resume", "set_weight_decay"]
    assert commands[0].source != commands[1].source  # an id each, from the line's offset
    assert commands[2] == Command("set_weight_decay", 2.0, source="control:ok")
    reasons = {r.split(" ", 1)[0]: r for r in rejected}
    assert "401 digits" in reasons["huge"] and "finite number" in reasons["nan"] and "[0, 10000]" in reasons["neg"]
    assert "needs a number" in reasons["str"] and "unknown command" in reasons["grow"]
    assert sum("not a JSON object" in r for r in rejected) == 2
    assert any(f"at most {MAX_LINE_BYTES}" in r for r in rejected)
    assert all(len(r) <= 300 for r in rejected)


@pytest.mark.unit
def test_a_line_is_applied_once_across_polls_and_a_resume(tmp_path: Path) -> None:
    control = tmp_path / layout.CONTROL
    _write(control, json.dumps({"command": "checkpoint"}))
    first = ControlFile(tmp_path, min_interval_s=0)
    [cmd] = first.poll()
    assert first.poll() == []
    _write(control, json.dumps({"command": "checkpoint"}))  # the same text again is a new command
    assert len(first.poll()) == 1
    # A resumed run: what is already in the file was for the process that died.
    assert ControlFile(tmp_path, min_interval_s=0, from_end=True).poll() == []


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink loop"])
def test_a_control_path_that_is_not_a_file_is_reported_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / layout.CONTROL
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # opening it to read would block the run: it must not be opened
    else:
        path.symlink_to(path.name)
    control = ControlFile(tmp_path, min_interval_s=0)
    first = control.poll()
    assert len(first) == 1 and "ignored" in first[0]
    assert control.poll() == []


@pytest.mark.unit
def test_a_huge_control_file_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    line = json.dumps({"command": "checkpoint", "pad": "x" * 1000}) + "\n"
    (tmp_path / layout.CONTROL).write_text(line * (3 * MAX_READ_BYTES // len(line)))
    control = ControlFile(tmp_path, min_interval_s=0)
    sizes = []
    for _ in range(5):
        before = control.follower.offset
        control.poll()
        sizes.append(control.follower.offset - before)
    assert max(sizes) <= MAX_READ_BYTES and sum(sizes) > 2 * MAX_READ_BYTES


@pytest.mark.unit
def test_a_file_without_a_newline_is_not_read_again_until_it_grows(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / layout.CONTROL).write_text('{"command": "pause"')  # a writer mid-line, or a careless one
    control = ControlFile(tmp_path, min_interval_s=0)
    reads: list[int] = []
    original = Path.open

    def counting_open(self: Path, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if self.name == layout.CONTROL:
            reads.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    for _ in range(10):
        assert control.poll() == []
    assert len(reads) == 1


@pytest.mark.engine
def test_a_run_survives_a_hostile_control_file_and_logs_each_rejection(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _write(run / layout.CONTROL, json.dumps({"id": "x", "command": "set_weight_decay", "value": 10 ** 400}),
           "garbage", json.dumps({"id": "y", "command": "set_lr", "value": 2e-3}))
    result = RunSession.new(tiny.replace("train", max_steps=60), run).run(handle_signals=False)
    assert result.status == "completed" and read_summary(run)["status"] == "completed"
    rejected = [e for e in read_events(run) if e["type"] == "alert" and e["kind"] == "command_rejected"]
    assert sorted(e["message"].split(" ")[0] for e in rejected) == ["@" + str(len(json.dumps(
        {"id": "x", "command": "set_weight_decay", "value": 10 ** 400})) + 1), "x"]
    assert read_rows(run)[-1]["lr"] == pytest.approx(2e-3)
