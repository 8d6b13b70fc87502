"""The engine on a tiny run into a list sink: events, commands, divergence, failure, resume exactness."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from grokmon.config import Config
from grokmon.engine import Engine
from grokmon.events import (
    Alert, CheckpointSaved, Command, Evaluation, Event, Failed, Finished, Intervention, RunStarted,
)
from grokmon.rundir.writer import RunDir
from grokmon.rundir.readers import checkpoints, load_checkpoint, read_jsonl

pytestmark = pytest.mark.engine


class MemoryCheckpointer:
    def __init__(self) -> None:
        self.saved: dict[int, dict] = {}

    def save(self, step: int, state: dict) -> str:
        self.saved[step] = state
        return f"mem:{step}"


def test_events_of_a_plain_run(tiny: Config) -> None:
    events: list[Event] = []
    ckpt = MemoryCheckpointer()
    result = Engine(tiny, sinks=[events.append], checkpointer=ckpt).run()
    assert result.status == "completed" and result.step == 120
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], Finished)
    evals = [e for e in events if isinstance(e, Evaluation)]
    assert [e.step for e in evals] == list(range(0, 121, 20))
    assert sorted(ckpt.saved) == [40, 80, 120]
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [40, 80, 120]
    assert evals[0].lr == pytest.approx(tiny.optim.lr / tiny.optim.warmup_steps)  # warm-up
    assert evals[-1].lr == pytest.approx(tiny.optim.lr)
    assert evals[-1].train_loss < evals[0].train_loss


def test_commands_are_applied_between_steps_and_emitted(tiny: Config) -> None:
    events: list[Event] = []
    engine = Engine(tiny, sinks=[events.append], checkpointer=MemoryCheckpointer())
    commands = engine.commands
    commands.put(Command("set_weight_decay", 3.0, source="test"))
    commands.put(Command("set_lr", 5e-4, source="test"))
    commands.put(Command("checkpoint", source="test"))
    engine.run()
    inter = [e for e in events if isinstance(e, Intervention)]
    assert [(e.name, e.old, e.new, e.step) for e in inter] == [
        ("weight_decay", 1.0, 3.0, 0), ("lr", tiny.optim.lr, 5e-4, 0), ("checkpoint", None, None, 0),
    ]
    evals = [e for e in events if isinstance(e, Evaluation)]
    assert evals[0].weight_decay == 1.0  # evaluated before the commands were applied
    assert all(e.weight_decay == 3.0 for e in evals[1:])
    assert evals[-1].lr == pytest.approx(5e-4)
    assert engine.optimizer.param_groups[0]["weight_decay"] == 3.0


def test_pause_blocks_until_resume_and_stop_ends_the_run(tiny: Config) -> None:
    events: list[Event] = []
    paused = threading.Event()

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, Intervention) and event.name == "pause":
            paused.set()

    engine = Engine(tiny.replace("train", max_steps=100000), sinks=[sink], checkpointer=MemoryCheckpointer())
    commands = engine.commands
    thread = threading.Thread(target=engine.run)
    commands.put(Command("pause"))
    thread.start()
    assert paused.wait(30)
    step_at_pause = engine.step
    commands.put(Command("set_weight_decay", 2.0))  # applied while paused
    commands.put(Command("resume"))
    commands.put(Command("stop", source="test"))
    thread.join(60)
    assert not thread.is_alive()
    assert engine.step == step_at_pause  # stop was applied before another step ran
    names = [e.name for e in events if isinstance(e, Intervention)]
    assert names == ["pause", "weight_decay", "resume", "stop"]
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.status == "stopped"


def test_nonfinite_loss_alerts_and_stops_cleanly(tiny: Config, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    engine = Engine(tiny, sinks=[run], checkpointer=run)
    engine.commands.put(Command("set_lr", 10.0))
    engine.commands.put(Command("set_weight_decay", 0.0))
    original = engine.train_step

    def overflow() -> torch.Tensor:  # a step whose update overflows, as a too-large lr eventually does
        if engine.step == 30:
            with torch.no_grad():
                engine.model.W_U.mul_(float("inf"))
        return original()

    engine.train_step = overflow  # type: ignore[method-assign]
    result = engine.run()
    run.close()
    assert result.status == "diverged"
    events = read_jsonl(tmp_path / "run" / "events.jsonl")
    assert any(e["type"] == "alert" and e["kind"] == "nonfinite_loss" for e in events)
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"status": "diverged"' in summary and "NaN" not in summary
    for row in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        assert all(v is None or v == v for v in row.values() if isinstance(v, float))


def test_exception_in_training_is_an_event_and_a_log(tiny: Config, tmp_path: Path, monkeypatch) -> None:
    run = RunDir(tmp_path / "run")
    engine = Engine(tiny, sinks=[run], checkpointer=run)
    original = engine.train_step

    def boom() -> torch.Tensor:
        if engine.step == 50:
            raise RuntimeError("simulated CUDA error")
        return original()

    monkeypatch.setattr(engine, "train_step", boom)
    result = engine.run()
    run.close()
    assert result.status == "failed" and "simulated CUDA error" in result.error
    d = tmp_path / "run"
    assert "simulated CUDA error" in (d / "error.log").read_text()
    assert '"status": "failed"' in (d / "summary.json").read_text()
    assert list(checkpoints(d)) == [40]  # the last good checkpoint is kept and usable
    assert load_checkpoint(checkpoints(d)[40]).step == 40


def _metrics(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_jsonl(path / "metrics.jsonl")]


@pytest.mark.parametrize(("batch_size", "stop_at"), [(0, 57), (32, 57), (0, 40)])
def test_resume_reproduces_the_uninterrupted_run_exactly(tiny: Config, tmp_path: Path, batch_size: int,
                                                         stop_at: int) -> None:
    """57: an off-schedule step. 40: the checkpoint at 40 is written before the evaluation at 40 (the
    stop arrives just after it), so the resumed run must evaluate step 40 once, not twice."""
    cfg = tiny.replace("train", batch_size=batch_size, max_steps=140)
    full = RunDir(tmp_path / "full")
    Engine(cfg, sinks=[full], checkpointer=full).run()
    full.close()

    # Interrupted run: stop as Ctrl-C would, then resume from there.
    part = RunDir(tmp_path / "part")
    engine = Engine(cfg, sinks=[part], checkpointer=part)
    original = engine.train_step

    def stop_then() -> torch.Tensor:
        out = original()
        if engine.step == stop_at:
            engine.request_stop("SIGINT")  # what the session's signal policy does on Ctrl-C
        return out

    engine.train_step = stop_then  # type: ignore[method-assign]
    assert engine.run().status == "interrupted"
    part.close()
    step, path = max(checkpoints(tmp_path / "part").items())
    assert step == stop_at
    state = load_checkpoint(path)
    resumed = RunDir(tmp_path / "part", resume_step=step)
    Engine(cfg, sinks=[resumed], checkpointer=resumed, resume_state=state).run()
    resumed.close()
    assert _metrics(tmp_path / "part") == _metrics(tmp_path / "full")  # equal, not close

    # A run that finished at an off-schedule max_steps, then extended: its final row is dropped.
    short = RunDir(tmp_path / "short")
    Engine(cfg.replace("train", max_steps=70), sinks=[short], checkpointer=short).run()
    short.close()
    assert _metrics(tmp_path / "short")[-1]["step"] == 70
    state = load_checkpoint(checkpoints(tmp_path / "short")[70])
    more = RunDir(tmp_path / "short", resume_step=70)
    Engine(cfg, sinks=[more], checkpointer=more, resume_state=state).run()
    more.close()
    assert _metrics(tmp_path / "short") == _metrics(tmp_path / "full")


def test_alert_event_is_plain_data() -> None:
    a = Alert(step=1, wall_s=0.5, kind="nonfinite_loss", message="x")
    with pytest.raises(AttributeError):
        a.step = 2  # type: ignore[misc]


@pytest.mark.parametrize("bad", [("grow", None), ("set_lr", None), ("set_weight_decay", -1.0),
                                 ("set_weight_decay", float("nan"))])
def test_bad_commands_are_refused(bad: tuple) -> None:
    with pytest.raises(ValueError):
        Command(*bad)


def test_failed_event_type_exists() -> None:
    f = Failed(step=0, wall_s=0.0, error="E", traceback="T")
    assert f.error == "E"
