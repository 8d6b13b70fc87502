"""The `grokmon` command as a user and a batch job meet it: verbs, bad input, signals, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli, write_tiny_profile
from grokmon.rundir.readers import read_jsonl

pytestmark = pytest.mark.integration

METRIC_KEYS = ["step", "wall_s", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "weight_decay"]


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("grokmon: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_profiles_lists_one_line_each() -> None:
    proc = run_cli("profiles")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.strip().splitlines()]
    assert {"default", "fsd", "quick"} <= set(names)


def test_headless_run_writes_a_complete_run_directory(tmp_path: Path, tiny_profile: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", str(tiny_profile), "--out", str(out), "--set", "optim.weight_decay=0.5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)  # stdout names the run directory for scripts
    config = json.loads((out / "config.json").read_text())
    assert config["optim"]["weight_decay"] == 0.5 and config["task"]["p"] == 23
    rows = read_jsonl(out / "metrics.jsonl")
    assert [list(r) for r in rows] == [METRIC_KEYS] * len(rows)
    assert rows[-1]["step"] == 120
    types = [e["type"] for e in read_jsonl(out / "events.jsonl")]
    assert types[0] == "start" and types[-1] == "finish"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 120
    assert {"t_grok", "final", "best"} <= set(summary)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step_00000040.pt", "step_00000080.pt", "step_00000120.pt"]
    assert "step 120/120" in proc.stderr  # plain progress lines when stderr is not a terminal


def test_steps_flag_and_default_run_dir(tmp_path: Path, tiny_profile: Path) -> None:
    proc = run_cli("run", str(tiny_profile), "--steps", "40", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / proc.stdout.strip()
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith("tiny-")
    assert read_jsonl(run_dir / "metrics.jsonl")[-1]["step"] == 40


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "nosuchprofile"], ["unknown profile 'nosuchprofile'"]),
        (["run", "quik"], ["did you mean 'quick'"]),
        (["run", "missing.toml"], ["missing.toml: no such profile file"]),
        (["run", "quick", "--set", "optim.lr"], ["--set", "expected section.key=value"]),
        (["run", "quick", "--set", "optim.wieght_decay=2"], ["optim.wieght_decay", "did you mean 'weight_decay'"]),
        (["run", "quick", "--set", "task.op=mul", "--set", "task.p=60"], ["task.p", "prime"]),
        (["run", "quick", "--set", "task.frac_train=1.5"], ["task.frac_train", "between 0 and 1"]),
        (["run", "quick", "--set", "optim.weight_decay=-1"], ["optim.weight_decay", "[0, 10000]"]),
        (["run", "quick", "--set", "model.d_model=100", "--set", "model.n_heads=3"], ["model.d_model"]),
        (["run", "quick", "--set", "train.max_steps=lots"], ["train.max_steps", "expected an integer"]),
        (["run", "quick", "--steps", "-5"], ["--steps"]),
        (["run", "quick", "--set", "train.device=cuda:7"], ["train.device"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    proc = run_cli(*args, "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert_user_error(proc, *fragments)
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_unreadable_profile_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[task]\np = "seven\n')
    assert_user_error(run_cli("run", str(bad), cwd=tmp_path), "bad.toml", "not valid TOML")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[model]\nd_model = 128.5\n")
    assert_user_error(run_cli("run", str(wrong), cwd=tmp_path), "wrong.toml", "model.d_model", "expected an integer")
    assert not (tmp_path / "runs").exists()


def test_out_dir_that_holds_files_is_refused_and_kept(tmp_path: Path, tiny_profile: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_user_error(run_cli("run", str(tiny_profile), "--out", str(out)), str(out), "--resume")
    assert (out / "notes.txt").read_text() == "mine"


def test_unwritable_run_directory_is_a_user_error(tmp_path: Path, tiny_profile: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_user_error(run_cli("run", str(tiny_profile), "--out", str(blocker / "run")),
                      "cannot write the run directory")
    assert blocker.read_text() == "not a directory"


def test_resume_of_something_that_is_not_a_run(tmp_path: Path) -> None:
    assert_user_error(run_cli("run", "--resume", str(tmp_path)), "not a grokmon run directory")
    (tmp_path / "config.json").write_text("{not json")
    assert_user_error(run_cli("run", "--resume", str(tmp_path)), "config.json", "not valid JSON")
    assert_user_error(run_cli("run", "quick", "--resume", str(tmp_path)), "not both")


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "grokmon", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("type") == "checkpoint" for e in read_jsonl(run_dir / "events.jsonl")):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_and_resume_matches_uninterrupted_run(tmp_path: Path, sig: int, code: int) -> None:
    profile = write_tiny_profile(tmp_path, max_steps=2000)
    full = tmp_path / "full"
    assert run_cli("run", str(profile), "--out", str(full), "--steps", "400").returncode == 0

    part = tmp_path / "part"
    proc = _start(["run", str(profile), "--out", str(part), "--steps", "400"], tmp_path)
    _wait_for_checkpoint(part, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    summary = json.loads((part / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    stopped_at = summary["steps"]
    assert (part / "checkpoints" / f"step_{stopped_at:08d}.pt").exists()
    assert any(e["type"] == "intervention" and e["name"] == "stop" for e in read_jsonl(part / "events.jsonl"))

    resumed = run_cli("run", "--resume", str(part), "--steps", "400")
    assert resumed.returncode == 0, resumed.stderr
    strip = lambda d: [{k: v for k, v in r.items() if k != "wall_s"} for r in read_jsonl(d / "metrics.jsonl")]
    assert strip(part) == strip(full)  # equal values, not close
    assert json.loads((part / "summary.json").read_text())["status"] == "completed"
    assert [e["type"] for e in read_jsonl(part / "events.jsonl")].count("resume") == 1


def test_resume_refuses_changes_to_the_model(tmp_path: Path, tiny_profile: Path) -> None:
    out = tmp_path / "run"
    assert run_cli("run", str(tiny_profile), "--out", str(out), "--steps", "40").returncode == 0
    assert_user_error(run_cli("run", "--resume", str(out), "--set", "model.d_mlp=8"), "model.d_mlp")
    (out / "checkpoints" / "step_00000040.pt").write_bytes(b"garbage")
    assert_user_error(run_cli("run", "--resume", str(out)), "step_00000040.pt", "checkpoint")


def test_report_prints_the_events_and_a_plot(tmp_path: Path, tiny_profile: Path) -> None:
    out = tmp_path / "run"
    assert run_cli("run", str(tiny_profile), "--out", str(out), "--set", "metrics.metrics_every=1",
                   "--set", "metrics.n_perm=100").returncode == 0
    proc = run_cli("report", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "grokked: val_acc first >= 0.95 (t_grok)" in proc.stdout and "lead = t_grok - t_fsd" in proc.stdout
    assert "did not grok (best val_acc" in proc.stdout  # the reason, not a bare dash
    assert "\x1b[" not in proc.stdout  # no colour codes when stdout is not a terminal
    plot = proc.stdout.split("lead = t_grok - t_fsd", 1)[1]
    assert "val_acc (line), FSD (dots)" in plot and "┌" in plot and "└" in plot  # the plot itself
    assert "┌" not in run_cli("report", str(out), "--no-plot").stdout
    data = json.loads(run_cli("report", str(out), "--json").stdout)
    assert {"t_grok_50", "t_grok", "t_grok_99", "t_fsd", "t_fsd_online", "t_excluded", "lead"} <= set(data)
    assert data["steps"] == 120 and data["status"] == "completed"
    assert_user_error(run_cli("report", str(tmp_path)), "not a grokmon run directory")
