"""Scheduled weight decay: "step" and "fsd" raise it once to kappa * lambda0, as a logged intervention; a
scheduled run is the same trajectory as a fork at the step where the schedule fired."""

from __future__ import annotations

from pathlib import Path

import pytest

from grokmon.config import Config
from grokmon.engine import Engine
from grokmon.errors import ConfigError
from grokmon.events import Command, Evaluation, Event, Intervention
from grokmon.rundir.writer import RunDir
from grokmon.rundir.readers import checkpoints, load_checkpoint, read_jsonl

pytestmark = pytest.mark.engine


def _run(cfg: Config) -> list[Event]:
    events: list[Event] = []
    Engine(cfg, sinks=[events.append]).run()
    return events


def test_step_schedule_raises_weight_decay_once_at_its_step(tiny: Config) -> None:
    cfg = tiny.replace("schedule", weight_decay="step", at_step=50, kappa=3.0)
    events = _run(cfg)
    inter = [e for e in events if isinstance(e, Intervention)]
    assert [(e.step, e.name, e.old, e.new, e.source) for e in inter] == [(50, "weight_decay", 1.0, 3.0, "schedule:step")]
    evals = [e for e in events if isinstance(e, Evaluation)]
    assert all(e.weight_decay == (1.0 if e.step <= 40 else 3.0) for e in evals)


class FiresAt:
    """A stand-in for the online detector that fires at a chosen probe step."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.fired_at: int | None = None

    def update(self, step: int, value: float, p_value: float) -> bool:
        if self.fired_at is None and step >= self.step:
            self.fired_at = step
            return True
        return False


def test_fsd_schedule_fires_with_the_online_detector(tiny: Config) -> None:
    cfg = tiny.replace("metrics", metrics_every=1).replace("schedule", weight_decay="fsd", kappa=2.5)
    events: list[Event] = []
    engine = Engine(cfg, sinks=[events.append])
    engine.detector = FiresAt(60)  # type: ignore[assignment]
    engine.run()
    inter = [e for e in events if isinstance(e, Intervention)]
    assert [(e.step, e.new, e.source) for e in inter] == [(60, 2.5, "schedule:fsd")]
    assert [e.kind for e in events if getattr(e, "kind", None) == "fsd_ceiling"] == ["fsd_ceiling"]


def test_constant_schedule_changes_nothing(tiny: Config) -> None:
    assert not [e for e in _run(tiny) if isinstance(e, Intervention)]


def _rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_jsonl(path / "metrics.jsonl")]


def test_scheduled_run_equals_a_fork_at_its_step_and_survives_resume(tiny: Config, tmp_path: Path) -> None:
    cfg = tiny.replace("train", checkpoint_every=40, max_steps=120)
    sched = cfg.replace("schedule", weight_decay="step", at_step=80, kappa=2.0)
    full = RunDir(tmp_path / "sched")
    Engine(sched, sinks=[full], checkpointer=full).run()
    full.close()

    # A constant run to its checkpoint at 80, then a fork there with weight decay 2.
    base = RunDir(tmp_path / "fork")
    Engine(cfg.replace("train", max_steps=80), sinks=[base], checkpointer=base).run()
    base.close()
    state = load_checkpoint(checkpoints(tmp_path / "fork")[80])
    branch = RunDir(tmp_path / "fork", resume_step=80)
    engine = Engine(cfg, sinks=[branch], checkpointer=branch, resume_state=state)
    engine.commands.put(Command("set_weight_decay", 2.0, source="fork"))
    engine.run()
    branch.close()
    assert _rows(tmp_path / "fork") == _rows(tmp_path / "sched")  # equal, not close

    # Resuming the scheduled run from its checkpoint at the schedule's step applies it once, not twice.
    again = RunDir(tmp_path / "sched", resume_step=80)
    events: list[Event] = []
    Engine(sched, sinks=[again, events.append], checkpointer=again,
           resume_state=load_checkpoint(checkpoints(tmp_path / "sched")[80])).run()
    again.close()
    assert len([e for e in events if isinstance(e, Intervention)]) == 1
    assert _rows(tmp_path / "sched") == _rows(tmp_path / "fork")


@pytest.mark.parametrize(("changes", "key"), [
    ({"weight_decay": "linear"}, "schedule.weight_decay"),
    ({"weight_decay": "step", "at_step": 0}, "schedule.at_step"),
    ({"kappa": 0.0}, "schedule.kappa"),
])
def test_bad_schedules_name_their_key(tiny: Config, changes: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny.replace("schedule", **changes)


def test_fsd_schedule_needs_the_probe(tiny: Config) -> None:
    with pytest.raises(ConfigError, match="metrics.metrics_every"):
        tiny.replace("schedule", weight_decay="fsd")
