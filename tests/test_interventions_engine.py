"""Interventions through the engine: a hyperparameter command queued before the first step is the same run
as configuring that value (the fork's weight-decay changes rest on this)."""

from __future__ import annotations

from typing import Any

import pytest

from grokmon.config import Config
from grokmon.engine import Engine
from grokmon.events import Command, Evaluation, Event

pytestmark = pytest.mark.engine

MODEL_COLUMNS = ("step", "train_loss", "train_acc", "val_loss", "val_acc")


def run_rows(cfg: Config, commands: tuple[Command, ...] = ()) -> list[dict[str, Any]]:
    """The metrics rows of one engine run, with `commands` queued before run() (applied before step 1)."""
    events: list[Event] = []
    engine = Engine(cfg, sinks=[events.append])
    for command in commands:
        engine.commands.put(command)
    result = engine.run()
    assert result.status == "completed", result
    return [e.record() for e in events if isinstance(e, Evaluation)]


def columns(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return [tuple(r[k] for k in keys) for r in rows]


def test_set_weight_decay_before_step_1_equals_configuring_it(tiny: Config) -> None:
    """A run configured with weight decay 0.3 and a run configured with 2.0 that gets set_weight_decay 0.3
    queued before run() give bit-for-bit the same losses and accuracies at every evaluation, and the same
    weight_decay column from step 1 on. The step-0 evaluation precedes the command, so its row still
    shows the configured value. A run left at 2.0 differs, so the comparison can tell the two apart."""
    target, other = 0.3, 2.0
    configured = run_rows(tiny.replace("optim", weight_decay=target))
    commanded = run_rows(tiny.replace("optim", weight_decay=other), (Command("set_weight_decay", target),))
    assert len(configured) == len(commanded) == 7  # steps 0, 20, ..., 120
    assert columns(commanded, MODEL_COLUMNS) == columns(configured, MODEL_COLUMNS)
    assert [r["weight_decay"] for r in commanded[1:]] == [target] * 6
    assert [r["weight_decay"] for r in configured] == [target] * 7
    assert commanded[0]["weight_decay"] == other
    untouched = run_rows(tiny.replace("optim", weight_decay=other))
    assert columns(untouched, MODEL_COLUMNS)[1:] != columns(configured, MODEL_COLUMNS)[1:]


def test_set_lr_before_step_1_equals_configuring_it(tiny: Config) -> None:
    """set_lr sets the base rate that the linear warm-up scales: a run configured with lr 3e-3 and a run
    configured with 1e-3 that gets set_lr 3e-3 before run() give the same losses and accuracies bit for
    bit, and the same scheduled `lr` column from step 1 on (past the 10-step warm-up: the full 3e-3).
    The step-0 row precedes the command: warm-up step 1 of 10 of the configured rate."""
    target, other = 3e-3, 1e-3
    cfg = tiny.replace("optim", warmup_steps=10)
    configured = run_rows(cfg.replace("optim", lr=target))
    commanded = run_rows(cfg.replace("optim", lr=other), (Command("set_lr", target),))
    assert columns(commanded, MODEL_COLUMNS) == columns(configured, MODEL_COLUMNS)
    assert [r["lr"] for r in commanded[1:]] == [r["lr"] for r in configured[1:]] == [target] * 6
    assert configured[0]["lr"] == pytest.approx(target / 10) and commanded[0]["lr"] == pytest.approx(other / 10)
    untouched = run_rows(cfg.replace("optim", lr=other))
    assert columns(untouched, MODEL_COLUMNS)[1:] != columns(configured, MODEL_COLUMNS)[1:]


def test_set_lr_inside_the_warm_up_is_scaled_by_it(tiny: Config) -> None:
    """With a 50-step warm-up the commanded base rate is still ramped: the rows at steps 20 and 40 show
    base * 21/50 and base * 41/50 (the rate of the step after the evaluation), identical to configuring it."""
    target, other = 3e-3, 1e-3
    cfg = tiny.replace("optim", warmup_steps=50)
    configured = run_rows(cfg.replace("optim", lr=target))
    commanded = run_rows(cfg.replace("optim", lr=other), (Command("set_lr", target),))
    assert columns(commanded, MODEL_COLUMNS) == columns(configured, MODEL_COLUMNS)
    assert [r["lr"] for r in commanded[1:]] == [r["lr"] for r in configured[1:]]
    assert [r["lr"] for r in commanded[1:3]] == pytest.approx([target * 21 / 50, target * 41 / 50])
