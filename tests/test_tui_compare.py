"""The compare view driven by Pilot on scripted run directories (plain JSONL in the real format): the table
and its differing config columns, liveness, following appended rows and new runs, t_grok markers, Enter and
Escape, steering keys for live runs only, both sizes and NO_COLOR."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from textual.widgets import Input

from grokmon.tui.compare import CompareApp, CompareHelp, SingleRunApp
from grokmon.tui.compare_table import CompareTable, glyph
from grokmon.tui.overlay_plot import Line, OverlayPlot, render_overlay
from grokmon.tui.run_set import RunSet, find_runs
from grokmon.tui.source import WatchSource
from grokmon.tui.value_modal import ValueModal
from tui_fakes import CONFIG, metrics_row, record_notifications, screen_text, wait_for

pytestmark = pytest.mark.unit

SIZES = [(120, 40), (80, 24)]


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): what a killed trainer leaves in owner.json."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def t_grok(grok_at: int, steps: range = range(0, 2000, 100)) -> int | None:
    """The first step of `steps` whose scripted val_acc reaches 0.95 (metrics_row's curve crosses past grok_at)."""
    return next((s for s in steps if metrics_row(s, grok_at=grok_at)["val_acc"] >= 0.95), None)


def write_run(path: Path, *, state: str = "live", p: int = 53, steps: range = range(0, 2000, 100),
              grok_at: int = 1500, wd: float = 1.0, config: dict[str, Any] | None = None) -> Path:
    """A run directory as a trainer leaves it: config.json, metrics.jsonl, events.jsonl, owner.json, and for
    a finished run summary.json and a released owner; a dead run's owner is a process that is gone."""
    path.mkdir(parents=True)
    cfg = json.loads(json.dumps(config or CONFIG))
    cfg["task"]["p"] = p
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "metrics.jsonl").write_text(
        "".join(json.dumps(metrics_row(s, wd=wd, grok_at=grok_at, probe=s % 200 == 0)) + "\n" for s in steps))
    now = time.time()
    events = [{"step": 0, "wall_s": 0.0, "time": now, "type": "start", "device": "cpu"}]
    owner: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "started": now, "heartbeat": now}
    if state == "finished":
        events.append({"step": steps[-1], "wall_s": 1.0, "time": now, "type": "finish", "status": "completed",
                       "reason": "max_steps"})
        (path / "summary.json").write_text(json.dumps({"status": "completed", "steps": steps[-1], "wall_s": 1.0,
                                                       "t_grok": t_grok(grok_at, steps), "t_fsd": None, "lead": None}))
        owner["released"] = now
    elif state == "dead":
        owner["pid"] = _dead_pid()
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (path / "owner.json").write_text(json.dumps(owner))
    return path


def three_runs(root: Path) -> dict[str, Path]:
    return {"live": write_run(root / "p53-s0", state="live", p=53, grok_at=1500),
            "finished": write_run(root / "p59-s0", state="finished", p=59, grok_at=1200),
            "dead": write_run(root / "p61-s0", state="dead", p=61, grok_at=900)}


def make_app(paths: list[Path], **kw: Any) -> CompareApp:
    """Fast timers, so conditions come true within a few pauses."""
    return CompareApp(RunSet(paths, scan_every_s=0.05), poll_s=0.05, redraw_s=0.05, **kw)


def cells(table: CompareTable) -> list[dict[str, str]]:
    """The table as plain strings, one dict per row keyed by column label."""
    labels = [c.label.plain for c in table.columns.values()]
    return [dict(zip(labels, (getattr(v, "plain", str(v)) for v in table.get_row_at(i))))
            for i in range(table.row_count)]


def row_of(table: CompareTable, name: str) -> dict[str, str]:
    return next(r for r in cells(table) if r["name"] == name)


async def select(pilot: Any, app: CompareApp, path: Path) -> None:
    app.table.select(path)
    await wait_for(pilot, lambda: app.table.selected_path() == path, "the run selected")


def control_lines(run: Path) -> list[dict[str, Any]]:
    f = run / "control.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


@pytest.mark.parametrize("size", SIZES)
async def test_table_shows_runs_differing_config_and_liveness(tmp_path: Path, size: tuple[int, int]) -> None:
    three_runs(tmp_path)
    app = make_app([tmp_path])
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 3 and row_of(app.table, "p61-s0")["step"] == "1900",
                       "three rows", delay=0.05)
        labels = [c.label.plain for c in app.table.columns.values()]
        # task.p is the only config value that differs: the one config column.
        assert labels == ["#", "name", "task.p", "status", "state", "step", "val_acc", "t_fsd", "t_grok", "lead"]
        rows = {r["name"]: r for r in cells(app.table)}
        assert [(rows[n]["task.p"], rows[n]["status"], rows[n]["state"]) for n in ("p53-s0", "p59-s0", "p61-s0")] == [
            ("53", "running", "live"), ("59", "completed", "finished"), ("61", "crashed", "dead")]
        assert {r["step"] for r in rows.values()} == {"1900"}
        assert (rows["p53-s0"]["t_grok"], rows["p61-s0"]["t_grok"]) == (str(t_grok(1500)), str(t_grok(900)))
        text = screen_text(app)
        assert "compare 3 runs: 1 live, 1 finished, 1 dead" in text
        # The key line names every shown run with its glyph, below the plots (never inside them).
        assert "1 p53-s0" in text and "3 p61-s0" in text
        for plot in app.query(OverlayPlot):
            assert "p53" not in plot.text and "too small" not in plot.text


def test_differing_seeds_share_one_column(tmp_path: Path) -> None:
    """A sweep's seed sets task.seed, model.seed and train.seed alike: one column for the three."""
    for p, seed in [(53, 0), (53, 1), (59, 0)]:
        cfg = json.loads(json.dumps(CONFIG))
        cfg["model"]["seed"] = cfg["train"]["seed"] = seed
        cfg["task"]["seed"] = seed
        write_run(tmp_path / f"p{p}-s{seed}", p=p, config=cfg)
    runs = RunSet([tmp_path])
    runs.poll(budget_s=5)
    assert [label for label, _ in runs.differing()] == ["task.p", "task/model/train.seed"]
    assert [t.name for t in runs.tracks] == ["p53-s0", "p53-s1", "p59-s0"]


async def test_a_run_folder_created_while_open_appears(tmp_path: Path) -> None:
    three_runs(tmp_path)
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 3, "three rows", delay=0.05)
        write_run(tmp_path / "nested" / "forks" / "wd_2", p=53, wd=2.0)
        await wait_for(pilot, lambda: app.table.row_count == 4, "the new run's row", delay=0.05)
        assert row_of(app.table, "nested/forks/wd_2")["state"] == "live"
        # Weight decays now differ between the runs: the wd column shows each run's current one.
        await wait_for(pilot, lambda: "wd" in [c.label.plain for c in app.table.columns.values()], "a wd column",
                       delay=0.05)
        assert row_of(app.table, "nested/forks/wd_2")["wd"] == "2"


async def test_rows_appended_while_open_update_the_step(tmp_path: Path) -> None:
    runs = three_runs(tmp_path)
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 3, "three rows", delay=0.05)
        assert row_of(app.table, "p53-s0")["step"] == "1900"
        with (runs["live"] / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(metrics_row(2000, grok_at=1500)) + "\n")
            f.write(json.dumps(metrics_row(2100, grok_at=1500))[:40])  # a writer mid-line: not read yet
            f.flush()
            await wait_for(pilot, lambda: row_of(app.table, "p53-s0")["step"] == "2000", "step 2000", delay=0.05)
            await pilot.pause(0.2)
            assert row_of(app.table, "p53-s0")["step"] == "2000"  # the partial line is left for later
            f.write(json.dumps(metrics_row(2100, grok_at=1500))[40:] + "\n")
        await wait_for(pilot, lambda: row_of(app.table, "p53-s0")["step"] == "2100", "step 2100", delay=0.05)


@pytest.mark.parametrize("no_color", [False, True])
async def test_t_grok_markers_on_every_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_color: bool) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    runs = three_runs(tmp_path)
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 3, "three rows", delay=0.05)
        expected = {(glyph(app.runs.get(p).number), t) for p, t in
                    [(runs["live"], t_grok(1500)), (runs["finished"], t_grok(1200)), (runs["dead"], t_grok(900))]}
        for plot in app.query(OverlayPlot):
            await wait_for(pilot, lambda: set(plot.drawn_marks) == expected, f"markers on {plot.label}", delay=0.05)
            assert "┆" in plot.text
        assert app.no_color == no_color
        acc = app.query_one("#plot-acc", OverlayPlot).text
        braille = any(0x2800 < ord(ch) <= 0x28FF for ch in acc)
        # Without colour each run draws with its own glyph (1, 2, 3), so the lines stay apart.
        assert braille != no_color
        if no_color:
            canvas = "".join(line.split("┤" if "┤" in line else "│", 1)[-1] for line in acc.splitlines()[:-1])
            assert {"1", "2", "3"} <= set(canvas)


async def test_space_and_a_choose_the_runs_shown(tmp_path: Path) -> None:
    for i in range(10):
        write_run(tmp_path / f"r{i}", p=53 + i)
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 10, "ten rows", delay=0.05)
        acc = app.query_one("#plot-acc", OverlayPlot)
        shown = lambda: [t.name for t in app.runs.tracks if t.shown]  # noqa: E731
        assert shown() == [f"r{i}" for i in range(8)]  # more than 8 runs: the first 8 start shown
        await wait_for(pilot, lambda: len(acc.lines) == 8, "8 lines", delay=0.05)
        await select(pilot, app, tmp_path / "r9")
        await pilot.press("space")
        assert "r9" in shown() and len(acc.lines) == 9 and row_of(app.table, "r9")["#"] == "A●"
        await pilot.press("space")
        assert "r9" not in shown() and row_of(app.table, "r9")["#"] == "A○"
        await pilot.press("a")
        assert len(shown()) == 10 and len(acc.lines) == 10
        await pilot.press("a")
        assert shown() == [] and acc.lines == [] and "no run shown" in acc.text
        await pilot.press("question_mark")  # the help names these keys and the table's columns
        await wait_for(pilot, lambda: isinstance(app.screen, CompareHelp), "the help")
        text = screen_text(app)
        assert "show / hide the selected run" in text and "t_fsd, t_grok, lead" in text


async def test_enter_exits_with_the_selected_run(tmp_path: Path) -> None:
    runs = three_runs(tmp_path)
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 3, "three rows", delay=0.05)
        await pilot.press("down")
        await wait_for(pilot, lambda: app.table.selected_path() == runs["finished"], "the second row selected")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.return_value is not None, "the app to exit")
    assert app.return_value == runs["finished"]


async def test_the_selection_is_restored_on_coming_back(tmp_path: Path) -> None:
    runs = three_runs(tmp_path)
    app = make_app([tmp_path], selected=runs["dead"])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.table.selected_path() == runs["dead"], "the dead run selected", delay=0.05)


@pytest.mark.parametrize("size", SIZES)
async def test_escape_in_the_single_run_view_goes_back(tmp_path: Path, size: tuple[int, int]) -> None:
    runs = three_runs(tmp_path)
    app = SingleRunApp(WatchSource(runs["finished"], interval_s=0.05))
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: len(app.state) == 20, "the run's rows", delay=0.05)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: len(app.screen_stack) == 2, "the help screen")
        await pilot.press("escape")  # closes the help, not the view
        await wait_for(pilot, lambda: len(app.screen_stack) == 1, "the help closed")
        assert app.return_value is None
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.return_value == "back", "the app to exit with 'back'")


@pytest.mark.parametrize("size", SIZES)
async def test_steering_keys_write_control_for_the_live_run(tmp_path: Path, size: tuple[int, int]) -> None:
    runs = three_runs(tmp_path)
    live = runs["live"]
    app = make_app([tmp_path])
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 3, "three rows", delay=0.05)
        await select(pilot, app, live)
        for key in ("w", "w", "W", "l", "p", "p", "c"):
            await pilot.press(key)
        lines = control_lines(live)
        # wd 1 -> 2 -> 4 -> 2 (each key builds on the request before it, not yet acknowledged).
        assert [(c["command"], c["value"]) for c in lines] == [
            ("set_weight_decay", 2.0), ("set_weight_decay", 4.0), ("set_weight_decay", 2.0), ("set_lr", 2e-3),
            ("pause", None), ("resume", None), ("checkpoint", None)]
        assert lines[0]["source"] == "key:w"
        await pilot.press("d")  # an exact value: the modal starts at the value requested last
        await wait_for(pilot, lambda: isinstance(app.screen, ValueModal), "the value modal")
        assert app.screen.query_one(Input).value == "2"
        app.screen.query_one(Input).value = "0.5"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(control_lines(live)) == 8, "the exact value sent")
        assert control_lines(live)[-1]["value"] == 0.5


@pytest.mark.parametrize("state", ["finished", "dead"])
async def test_steering_keys_are_refused_for_a_run_that_is_not_live(tmp_path: Path, state: str) -> None:
    runs = three_runs(tmp_path)
    app = make_app([tmp_path])
    seen = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 3, "three rows", delay=0.05)
        await select(pilot, app, runs[state])
        for key in ("w", "l", "p", "c"):
            await pilot.press(key)
        await pilot.pause()
    assert not (runs[state] / "control.jsonl").exists()
    refusals = [m for m, severity in seen if m.startswith("not sent") and severity == "warning"]
    assert len(refusals) == 4 and runs[state].name in refusals[0]


async def test_a_run_that_ends_while_selected_is_refused(tmp_path: Path) -> None:
    """The refusal reads the run's state at the key press, not the last poll's."""
    runs = three_runs(tmp_path)
    live = runs["live"]
    app = make_app([tmp_path])
    seen = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.table.row_count == 3, "three rows", delay=0.05)
        await select(pilot, app, live)
        owner = json.loads((live / "owner.json").read_text())
        (live / "owner.json").write_text(json.dumps({**owner, "pid": _dead_pid()}))
        await pilot.press("w")
    assert not (live / "control.jsonl").exists()
    assert any(m.startswith("not sent: p53-s0 is not running") for m, _ in seen)


def test_find_runs_recurses_into_forks_and_skips_checkpoints(tmp_path: Path) -> None:
    write_run(tmp_path / "q")
    write_run(tmp_path / "q" / "forks" / "wd_10")
    write_run(tmp_path / "q" / "forks" / "wd_1.5")
    write_run(tmp_path / "q" / "checkpoints" / "x")  # not a place runs live
    names = [p.relative_to(tmp_path).as_posix() for p in find_runs(tmp_path)]
    assert names == ["q", "q/forks/wd_1.5", "q/forks/wd_10"]


def test_overlay_keeps_a_one_row_spike() -> None:
    x = np.arange(0, 50_000, 10.0)
    y = np.full(len(x), 0.5)
    y[2500] = 1.0  # one row in 5000: far more rows than dot columns, the spike must survive the downsampling
    rows, marks = render_overlay([Line("1", "red", x, y, mark=30_000)], 60, 12, y_range=(0.0, 1.0))
    top = "".join(segment.text for segment in rows[0])
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in top) and marks == [("1", 30_000)]


def test_a_resumed_run_that_rewrote_its_rows_is_followed(tmp_path: Path) -> None:
    """A resume from the checkpoint at step 1000 rewrites metrics.jsonl to the rows before it (the file shrinks),
    then appends again: the kept rows, the step and t_grok follow the new timeline."""
    run = write_run(tmp_path / "r", grok_at=900)
    runs = RunSet([tmp_path])
    runs.poll(budget_s=5)
    track = runs.tracks[0]
    assert (track.step, track.t_grok, track.cols.n) == (1900, t_grok(900), 20)
    rows = [metrics_row(s, grok_at=5000) for s in range(0, 1000, 100)]  # before the checkpoint: not grokked
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs.poll(budget_s=5)
    assert (track.step, track.t_grok, track.cols.n) == (900, None, 10)
    with (run / "metrics.jsonl").open("a") as f:  # the resumed process evaluates step 900 again, then goes on
        f.write("".join(json.dumps(metrics_row(s, grok_at=5000)) + "\n" for s in (900, 1000)))
    runs.poll(budget_s=5)
    assert (track.step, track.cols.n, list(track.cols.column("step")[-3:])) == (1000, 11, [800.0, 900.0, 1000.0])
