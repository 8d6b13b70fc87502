"""The run session: new / resume / branch preparation, the signal policy (first signal: clean stop; second:
stop at once), the typed and versioned training state, and the run directory's config.json / run.json."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from grokmon.config import Config
from grokmon.errors import ConfigError
from grokmon.events import Command, Evaluation, Event
from grokmon.rundir import layout
from grokmon.rundir.readers import checkpoints, load_checkpoint, read_events, read_rows, read_summary
from grokmon.session import RunSession, SignalPolicy
from grokmon.trainstate import STATE_VERSION, TrainingState

pytestmark = pytest.mark.engine


def test_a_new_run_writes_config_alone_and_metadata_beside_it(tiny: Config, tmp_path: Path) -> None:
    session = RunSession.new(tiny, tmp_path / "run")
    session.open()
    result = session.run(handle_signals=False)
    assert result.status == "completed" and result.exit_code == 0
    config = json.loads((tmp_path / "run" / layout.CONFIG).read_text())
    assert set(config) == set(tiny.to_dict())  # nothing but the config
    meta = json.loads((tmp_path / "run" / layout.META).read_text())
    assert meta["format"] == layout.FORMAT_VERSION and meta["n_train"] + meta["n_val"] == 23 * 23
    assert [s["resumed"] for s in meta["starts"]] == [False]


def test_config_json_loads_strictly(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=40), run).run(handle_signals=False)
    config = json.loads((run / layout.CONFIG).read_text())
    (run / layout.CONFIG).write_text(json.dumps({**config, "optim": {**config["optim"], "weight_dekay": 1}}))
    with pytest.raises(ConfigError, match="optim.weight_dekay"):
        RunSession.resume(run)
    legacy = {**config, "torch_version": "2.4", "device": "cpu", "n_params": 1, "n_train": 1, "n_val": 1}
    (run / layout.CONFIG).write_text(json.dumps(legacy))  # a run directory from before run.json
    assert RunSession.resume(run, max_steps=60).cfg.train.max_steps == 60


def test_resume_continues_and_records_the_resume(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=40), run).run(handle_signals=False)
    session = RunSession.resume(run, max_steps=80)
    assert session.state is not None and session.state.step == 40
    session.run(handle_signals=False)
    assert [r["step"] for r in read_rows(run)] == [0, 20, 40, 60, 80]
    assert [s["resumed"] for s in json.loads((run / layout.META).read_text())["starts"]] == [False, True]
    with pytest.raises(ConfigError, match="model.d_mlp"):
        RunSession.resume(run, ["model.d_mlp=8"])


def test_a_run_killed_before_its_first_checkpoint_restarts_from_step_zero(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=30, checkpoint_every=1000), run).run(handle_signals=False)
    for path in checkpoints(run).values():  # as if killed before it wrote any
        path.unlink()
    (run / layout.SUMMARY).unlink()
    session = RunSession.resume(run)
    assert session.state is None and any("step 0" in n for n in session.notes)
    session.run(handle_signals=False)
    assert [r["step"] for r in read_rows(run)][:2] == [0, 20]  # one history, not two interleaved
    assert read_summary(run)["status"] == "completed"


def test_unreadable_checkpoints_are_an_error_not_a_restart(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=40), run).run(handle_signals=False)
    for path in checkpoints(run).values():
        path.write_bytes(b"garbage")
    rows = read_rows(run)
    with pytest.raises(ConfigError, match="not a readable grokmon checkpoint"):
        RunSession.resume(run)
    assert read_rows(run) == rows  # nothing was thrown away


def test_an_older_usable_checkpoint_is_used_when_the_newest_is_broken(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=80), run).run(handle_signals=False)
    checkpoints(run)[80].write_bytes(b"truncated")
    session = RunSession.resume(run)
    assert session.state is not None and session.state.step == 40
    assert any("unreadable" in n for n in session.notes)


def test_the_state_version_is_checked(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=40), run).run(handle_signals=False)
    path = checkpoints(run)[40]
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == STATE_VERSION
    torch.save({**raw, "version": 99}, path)
    with pytest.raises(ConfigError, match="version 99"):
        load_checkpoint(path)
    without_step = {k: v for k, v in raw.items() if k != "step"}
    torch.save(without_step, path)
    with pytest.raises(ConfigError, match="'step'"):
        load_checkpoint(path)


def test_a_checkpoint_of_another_shape_is_a_one_line_error(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=40), run).run(handle_signals=False)
    state = load_checkpoint(checkpoints(run)[40])
    with pytest.raises(ConfigError, match="does not fit"):
        RunSession(tiny.replace("model", d_mlp=16), tmp_path / "other", state=state).open()
    assert not (tmp_path / "other").exists()  # refused before anything was written


def test_training_state_round_trips(tiny: Config) -> None:
    from grokmon.engine import Engine

    state = Engine(tiny).state()
    again = TrainingState.from_dict(state.to_dict(), source="mem")
    assert again.step == state.step and again.base_lr == state.base_lr and again.t_grok is None
    with pytest.raises(ConfigError, match="expected a dict"):
        TrainingState.from_dict([1, 2], source="mem")


def _signal_twice_at(step: int, signum: int):  # noqa: ANN202
    """A sink that sends this process `signum` twice at an evaluation: the second arrives before the
    first has been acted on (the engine only looks at a step boundary)."""
    def sink(event: Event) -> None:
        if isinstance(event, Evaluation) and event.step == step:
            os.kill(os.getpid(), signum)
            os.kill(os.getpid(), signum)
    return sink


def test_first_signal_stops_cleanly_with_a_checkpoint(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    session = RunSession.new(tiny.replace("train", max_steps=10_000, checkpoint_every=10_000), run)

    def once(event: Event) -> None:
        if isinstance(event, Evaluation) and event.step == 60:
            os.kill(os.getpid(), signal.SIGTERM)

    session.open([once])
    result = session.run()
    assert result.status == "interrupted" and result.exit_code == 143
    assert list(checkpoints(run)) == [60]  # the stop's own checkpoint
    assert read_summary(run)["status"] == "interrupted"
    stop = [e for e in read_events(run) if e["type"] == "intervention" and e["name"] == "stop"]
    assert [e["source"] for e in stop] == ["signal:SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_second_signal_stops_at_once_without_a_traceback(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    session = RunSession.new(tiny.replace("train", max_steps=10_000, checkpoint_every=10_000), run)
    session.open([_signal_twice_at(60, signal.SIGINT)])
    result = session.run()
    assert result.status == "interrupted" and result.exit_code == 130
    assert checkpoints(run) == {}  # stopped at once: no final checkpoint
    summary = read_summary(run)
    assert summary["status"] == "interrupted" and summary["steps"] == 60
    assert "second signal" in [e for e in read_events(run) if e["type"] == "finish"][-1]["reason"]
    assert not any(p.name.endswith(".tmp") for p in run.rglob("*"))


def test_signal_policy_calls_first_then_second() -> None:
    calls: list[str] = []
    policy = SignalPolicy(lambda n: calls.append(f"first {n}"), lambda n: calls.append(f"second {n}"))
    policy(signal.SIGHUP)
    policy(signal.SIGINT)
    policy(signal.SIGINT)
    assert calls == ["first SIGHUP", "second SIGINT", "second SIGINT"] and policy.exit_code == 129


def test_set_lr_through_the_control_file_changes_the_rows_lr(tiny: Config, tmp_path: Path) -> None:
    from grokmon.rundir.control import append_command

    run = tmp_path / "run"
    run.mkdir()
    append_command(run, "set_lr", 2e-3, source="test")
    session = RunSession.new(tiny.replace("train", max_steps=60), run)  # a control file alone is allowed
    session.run(handle_signals=False)
    rows = read_rows(run)
    assert rows[0]["lr"] == pytest.approx(tiny.optim.lr / tiny.optim.warmup_steps)
    assert rows[-1]["lr"] == pytest.approx(2e-3)
    lr = [e for e in read_events(run) if e["type"] == "intervention" and e["name"] == "lr"]
    assert len(lr) == 1 and lr[0]["new"] == 2e-3 and lr[0]["step"] == 0


def test_a_branch_starts_from_its_fork_point_with_its_commands(tiny: Config, tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    RunSession.new(tiny.replace("train", max_steps=80), parent).run(handle_signals=False)
    branch = RunSession.branch(tiny.replace("train", max_steps=80), tmp_path / "b", start=checkpoints(parent)[40],
                               commands=[Command("set_weight_decay", 2.0, source="fork")], history_from=parent)
    branch.run(handle_signals=False)
    rows = read_rows(tmp_path / "b")
    assert [r["step"] for r in rows] == [0, 20, 40, 60, 80]
    assert rows[1] == read_rows(parent)[1]  # the parent's history, copied
    assert all(r["weight_decay"] == 2.0 for r in rows if r["step"] > 40)


def test_the_summary_of_an_ended_run_carries_the_offline_excluded_loss(tiny: Config, tmp_path: Path) -> None:
    """At the end of a run the summary holds the excluded-loss record recomputed from the checkpoints with the
    final checkpoint's keys (grokmon.offline), so that tables need not recompute it."""
    run = tmp_path / "run"
    cfg = tiny.replace("train", max_steps=60, eval_every=20, checkpoint_every=20).replace("metrics", metrics_every=1)
    RunSession.new(cfg, run).run(handle_signals=False)
    summary = json.loads((run / layout.SUMMARY).read_text())
    record = summary["excluded_offline"]
    assert summary["status"] == "completed" and record["final_step"] == 60
    assert record["key_freqs"] == read_rows(run)[-1]["key_freqs"]  # the final checkpoint's keys are the last row's


def test_a_failing_excluded_analysis_leaves_a_summary_that_says_why(tiny: Config, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import grokmon.offline

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(grokmon.offline, "excluded_record", broken)
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=20), run).run(handle_signals=False)
    summary = read_summary(run)  # as every reader sees it: a record of another shape would be dropped here
    assert summary is not None and summary["status"] == "completed"
    assert summary["excluded_offline"]["missing"] == "recomputation failed (RuntimeError: boom)"
