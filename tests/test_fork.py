"""`grokmon fork` end to end on a tiny run: the fork point replays the parent exactly, every branch gets the
parent's history and one logged weight-decay change, fork.json/fork.md are written, and an interrupted
branch is continued, not restarted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from grokmon.config import Config
from grokmon.engine import Engine
from grokmon.experiments.jobs import RunJob, run_job
from grokmon.rundir.writer import RunDir
from grokmon.rundir.readers import checkpoints, read_jsonl

pytestmark = pytest.mark.integration

CORE = ("step", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "weight_decay")


def _core(rows: list[dict]) -> list[dict]:
    return [{k: r[k] for k in CORE} for r in rows]


@pytest.fixture
def parent(tiny: Config, tmp_path: Path) -> Path:
    run = RunDir(tmp_path / "parent")
    Engine(tiny.replace("train", max_steps=120), sinks=[run], checkpointer=run).run()  # checkpoints at 40, 80, 120
    run.close()
    return tmp_path / "parent"


def test_fork_cli_branches_replay_and_report(parent: Path) -> None:
    proc = run_cli("fork", str(parent), "--at", "60", "--wd", "1,4", "--jobs", "2", "--max-steps", "120",
                   "--after-grok", "0")
    forks = parent / "forks"
    report = json.loads((forks / "fork.json").read_text())
    assert report["fork_step"] == 60 and report["fork_rule"] == "given step" and report["lambda0"] == 1.0
    assert [b["name"] for b in report["branches"]] == ["wd_1", "wd_4"]
    assert (forks / "fork_point.pt").is_file()  # no checkpoint at 60: replayed from the one at 40
    assert "| lambda | status | t_grok | dt |" in (forks / "fork.md").read_text()
    assert "| lambda | status" in proc.stdout and "fit" in proc.stdout
    parent_rows = read_jsonl(parent / "metrics.jsonl")
    for name, wd in (("wd_1", 1.0), ("wd_4", 4.0)):
        rows = read_jsonl(forks / name / "metrics.jsonl")
        assert _core([r for r in rows if r["step"] < 60]) == _core([r for r in parent_rows if r["step"] < 60])
        events = read_jsonl(forks / name / "events.jsonl")
        inter = [e for e in events if e["type"] == "intervention"]
        assert [(e["step"], e["new"], e["source"]) for e in inter] == [(60, wd, "fork")]
        assert all(r["weight_decay"] == wd for r in rows if r["step"] > 60)
        assert all(r["fsd"] is not None for r in rows if r["step"] >= 60)  # branches probe every evaluation
    # lambda0's branch is the parent itself, continued: replayed fork point, same numbers after the fork.
    same = read_jsonl(forks / "wd_1" / "metrics.jsonl")
    assert _core([r for r in same if r["step"] > 60]) == _core([r for r in parent_rows if r["step"] > 60])
    other = read_jsonl(forks / "wd_4" / "metrics.jsonl")
    assert _core(other)[-1] != _core(same)[-1]
    # The tiny run groks in neither branch: the exit status says the fit had nothing, the files still say why.
    assert proc.returncode == 0, proc.stderr
    md = (forks / "fork.md").read_text()
    assert all(report["fits"][s]["n"] == 0 for s in ("all_grokked", "stable"))
    assert "- all grokked: 0 branches; left out: 1 (did not grok by step 120), 4 (did not grok by step 120); " \
        "nothing to fit" in md
    # every branch is judged from the fork to its last evaluation, against the parent's level from memorisation
    for b in report["branches"]:
        assert b["stability_window"] == [60, 120] and b["window_end"] == "last evaluation"
        # the parent had not memorised by step 60, so only the accuracy test applies; train acc is below 0.99
        # after the fork, but over evaluations spanning less than 100 steps: stable
        assert b["stable"] is True and b["unstable_reason"] == "" and b["min_train_acc"] < 0.99
        assert 0 < b["dip_steps"] < 100 and b["spike_steps"] == 0
        assert b["t_mem"] is None and b["pre_fork_level"] is None and b["max_loss_ratio"] is None
        assert b["stability_note"] == "loss test not applied: no pre-fork level (the parent had not memorised by " \
            "the fork)"
    assert report["branch_eval_every"] == 20 and report["branch_max_steps"] == 120  # dt's resolution, its limit

    report_cli = run_cli("report", str(forks), "--no-plot")
    assert report_cli.returncode == 0 and report_cli.stdout.startswith("| lambda | status")
    assert json.loads(run_cli("report", str(forks), "--json").stdout)["fork_step"] == 60

    again = run_cli("fork", str(parent), "--at", "80", "--wd", "1")
    assert again.returncode == 2 and "already holds a fork at step 60" in again.stderr


def test_interrupted_branch_continues_from_its_own_checkpoint(parent: Path, tiny: Config, tmp_path: Path) -> None:
    from grokmon.rundir.readers import load_checkpoint

    state = checkpoints(parent)[40]
    cfg = tiny.replace("train", max_steps=120)
    job = RunJob("b", str(tmp_path / "whole"), cfg.to_dict(), start_state=str(state),
                 start_commands=(("set_weight_decay", 2.0, "fork"),), history_from=str(parent))
    assert run_job(job).status == "completed"

    short = RunJob("b", str(tmp_path / "cut"), cfg.replace("train", max_steps=80).to_dict(), start_state=str(state),
                   start_commands=(("set_weight_decay", 2.0, "fork"),), history_from=str(parent))
    run_job(short)
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    (tmp_path / "cut" / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    resumed = run_job(RunJob("b", str(tmp_path / "cut"), cfg.to_dict(), start_state=str(state),
                             start_commands=(("set_weight_decay", 2.0, "fork"),), history_from=str(parent)))
    assert resumed.status == "completed"
    assert load_checkpoint(checkpoints(tmp_path / "cut")[120]).optimizer["param_groups"][0]["weight_decay"] == 2.0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "cut" / "metrics.jsonl")) == strip(read_jsonl(tmp_path / "whole" / "metrics.jsonl"))
    assert run_job(job).status == "skipped-done"  # a finished branch is not trained again


@pytest.mark.parametrize(("args", "message"), [
    (["--at", "fsd-ceiling"], "no FSD ceiling before t_grok"),
    (["--at", "60", "--wd", "1,zero"], "--wd: expected comma-separated numbers"),
    (["--at", "60", "--jobs", "0"], "--jobs: expected an integer >= 1"),
])
def test_fork_input_errors_are_one_line_and_exit_2(parent: Path, args: list[str], message: str) -> None:
    proc = run_cli("fork", str(parent), *args)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (parent / "forks" / "fork.json").exists()


def test_fork_of_a_missing_run_dir(tmp_path: Path) -> None:
    proc = run_cli("fork", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "not a grokmon run directory" in proc.stderr


def test_a_run_locked_by_another_process_is_left_alone(tiny: Config, tmp_path: Path) -> None:
    import fcntl

    from grokmon.rundir.layout import LOCK

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    with open(run_dir / LOCK, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a second `grokmon fork` on the same directory would see it
        result = run_job(RunJob("r", str(run_dir), tiny.to_dict()))
    assert result.status == "busy" and not (run_dir / "metrics.jsonl").exists()
    assert "is being written by another process" in result.error
    assert run_job(RunJob("r", str(run_dir), tiny.to_dict())).status == "completed"


def test_ctrl_c_stops_parallel_branches_cleanly_and_a_rerun_finishes(parent: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "grokmon", "fork", str(parent), "--at", "60", "--wd", "1,2", "--jobs", "2",
            "--after-grok", "0"]
    proc = subprocess.Popen([*args, "--max-steps", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, stdin=subprocess.DEVNULL)
    forks = parent / "forks"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # both branches past the fork: they are training
        if all(len(read_jsonl(forks / b / "metrics.jsonl")) > 8 for b in ("wd_1", "wd_2")):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal's Ctrl-C does: the whole foreground group
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"fork did not stop after Ctrl-C; stderr:\n{err}")
    assert proc.returncode == 130, err
    for b in ("wd_1", "wd_2"):
        summary = json.loads((forks / b / "summary.json").read_text())
        assert summary["status"] == "interrupted" and checkpoints(forks / b)
    assert "run the same command again" in err

    again = subprocess.run([*args, "--max-steps", "200"], capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    report = json.loads((forks / "fork.json").read_text())
    assert [b["status"] for b in report["branches"]] == ["completed", "completed"]


def test_a_fork_that_cannot_be_replayed_exactly_is_refused(tiny: Config, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "sched")
    cfg = tiny.replace("train", max_steps=120).replace("schedule", weight_decay="step", at_step=50, kappa=2.0)
    Engine(cfg, sinks=[run], checkpointer=run).run()  # checkpoints at 40, 80, 120; weight decay raised at 50
    run.close()
    proc = run_cli("fork", str(tmp_path / "sched"), "--at", "60", "--wd", "1")
    assert proc.returncode == 2
    assert "weight_decay changed at step 50 (schedule:step)" in proc.stderr and "80, 120" in proc.stderr
    ok = run_cli("fork", str(tmp_path / "sched"), "--at", "80", "--wd", "1", "--max-steps", "100")
    assert ok.returncode == 0, ok.stderr  # a checkpoint step needs no replay
    assert json.loads((tmp_path / "sched" / "forks" / "fork.json").read_text())["lambda0"] == 2.0


def test_a_job_that_raises_in_its_process_is_reported_failed_and_the_others_finish(tiny: Config,
                                                                                   tmp_path: Path) -> None:
    from grokmon.experiments import jobs

    bad = RunJob("bad", str(tmp_path / "bad"), {**tiny.to_dict(), "train": {**tiny.to_dict()["train"],
                                                                           "device": "cuda:99"}})
    good = RunJob("good", str(tmp_path / "good"), tiny.to_dict())
    results = jobs.run_jobs([bad, good], n_jobs=2)
    assert results[0].status == "failed" and "cuda" in results[0].error  # reported, not a hang
    assert results[1].status == "completed"
