"""The app on real runs: training in the app's worker, and watching a run trained by another process."""


from __future__ import annotations

import pytest

import asyncio
import json
import time
from pathlib import Path

from conftest import write_tiny_profile
from grokmon.config import load_config
from grokmon.rundir.readers import read_jsonl
from grokmon.session import RunSession
from grokmon.tui.app import GrokmonApp
from grokmon.tui.source import LiveSource, WatchSource
from test_cli import _start

pytestmark = pytest.mark.integration


async def _until(pilot, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_quick_profile_in_the_app_w_doubles_weight_decay(tmp_path: Path) -> None:
    cfg = load_config("quick", ["model.n_layers=1", "train.max_steps=400", "train.eval_every=25", "metrics.metrics_every=2",
                                "metrics.n_perm=200"])
    session = RunSession.new(cfg, tmp_path / "run")
    source = LiveSource(session)
    run = session.rundir
    app = GrokmonApp(source)
    async with app.run_test(size=(120, 40)) as pilot:
        rows = lambda: read_jsonl(run.path / "metrics.jsonl")  # noqa: E731
        await _until(pilot, lambda: any(r["step"] >= 100 for r in rows()))
        await pilot.press("w")
        await _until(pilot, lambda: any(e["type"] == "intervention" for e in read_jsonl(run.path / "events.jsonl")))
        acked = next(e["step"] for e in read_jsonl(run.path / "events.jsonl") if e["type"] == "intervention")
        await _until(pilot, lambda: any(r["step"] > acked for r in rows()))  # a row trained with the new value
        await pilot.press("q")
        await _until(pilot, lambda: source.result is not None)
    events = read_jsonl(run.path / "events.jsonl")
    wd = [e for e in events if e["type"] == "intervention" and e["name"] == "weight_decay"]
    assert len(wd) == 1 and (wd[0]["old"], wd[0]["new"]) == (1.0, 2.0) and wd[0]["source"] == "key:w"
    after = [r for r in read_jsonl(run.path / "metrics.jsonl") if r["step"] > wd[0]["step"]]
    before = [r for r in read_jsonl(run.path / "metrics.jsonl") if r["step"] <= wd[0]["step"]]
    assert after and all(r["weight_decay"] == 2.0 for r in after)
    assert all(r["weight_decay"] == 1.0 for r in before)
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["status"] in ("stopped", "completed")
    assert (run.path / "checkpoints").is_dir() and any((run.path / "checkpoints").iterdir())


async def test_watch_steers_a_headless_run_in_another_process(tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path, max_steps=100000)
    out = tmp_path / "run"
    app = GrokmonApp(WatchSource(out, interval_s=0.1))
    proc = None
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.3)  # the run has not started writing yet: the app waits for it
            proc = _start(["run", str(profile), "--headless", "--out", str(out)], tmp_path)
            await _until(pilot, lambda: len(read_jsonl(out / "metrics.jsonl")) >= 2)
            await pilot.pause(0.3)  # the app has seen the config and some rows
            await pilot.press("w")
            ack = lambda: [e for e in read_jsonl(out / "events.jsonl")  # noqa: E731
                           if e["type"] == "intervention" and e["name"] == "weight_decay"]
            await _until(pilot, lambda: bool(ack()))
            await pilot.press("q")  # leaves the app; the run goes on
            await pilot.pause(0.2)
        assert proc.poll() is None
        wd = ack()[0]
        assert (wd["old"], wd["new"]) == (1.0, 2.0) and wd["source"].startswith("control:")
        await asyncio.sleep(0.5)
        rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["step"] > wd["step"]]
        assert all(r["weight_decay"] == 2.0 for r in rows)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


async def test_a_crash_in_the_training_thread_shows_and_keeps_the_app_open(tmp_path: Path) -> None:
    cfg = load_config("quick", ["model.n_layers=1", "train.max_steps=400", "train.eval_every=25", "metrics.metrics_every=0"])
    session = RunSession.new(cfg, tmp_path / "run")
    source = LiveSource(session)
    run, engine = session.rundir, session.engine
    original = engine.train_step

    def explode():
        if engine.step == 60:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return original()

    engine.train_step = explode  # type: ignore[method-assign]
    app = GrokmonApp(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: source.result is not None)
        await pilot.pause(1.2)  # a redraw tick
        assert app.is_running  # still open, so the user can read what happened
        assert app.state.status == "failed" and "illegal memory access" in (app.state.error or "")
        await pilot.press("q")
    assert "illegal memory access" in (run.path / "error.log").read_text()
    assert json.loads((run.path / "summary.json").read_text())["status"] == "failed"
