"""What docs/reliability.md promises, with real processes: one writer per run directory, unique run names,
exactly-once steering that survives kill -9, a full disk, and one line (exit 2) for every bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli, write_tiny_profile
from grokmon.config import load_config
from grokmon.events import Command
from grokmon.rundir import layout
from grokmon.rundir.control import append_command
from grokmon.rundir.readers import checkpoints, read_events, read_rows
from grokmon.session import RunSession

pytestmark = pytest.mark.integration

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "grokmon", *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _until(condition, proc: subprocess.Popen[str] | None = None, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def test_runs_started_together_get_their_own_directories(tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path, max_steps=60)
    procs = [_spawn(["run", str(profile), "--headless", "--set", f"model.seed={s}"], tmp_path) for s in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    dirs = sorted((tmp_path / "runs").iterdir())
    assert len(dirs) == 3 and {o[0].strip() for o in outs} == {str(d.relative_to(tmp_path)) for d in dirs}
    seeds = sorted(json.loads((d / "config.json").read_text())["model"]["seed"] for d in dirs)
    assert seeds == [0, 1, 2]
    for d in dirs:
        steps = [r["step"] for r in read_rows(d)]
        assert steps == sorted(set(steps)) == [0, 20, 40, 60]  # one run's rows, not three interleaved


def test_one_writer_per_directory_and_no_resume_of_a_live_run(tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path, max_steps=100_000)
    out = tmp_path / "run"
    first = _spawn(["run", str(profile), "--headless", "--out", str(out)], tmp_path)
    try:
        _until(lambda: len(read_rows(out)) >= 3, first)
        second = run_cli("run", str(profile), "--headless", "--out", str(out), cwd=tmp_path)
        assert second.returncode == 2 and "is being written by another process (pid" in second.stderr
        assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        rows_before = len(read_rows(out))
        resume = run_cli("run", "--resume", str(out), "--headless", cwd=tmp_path)
        assert resume.returncode == 2 and f"pid {first.pid}" in resume.stderr
        assert len(read_rows(out)) >= rows_before  # the live run's rows were not cut back
        report = run_cli("report", str(out), "--no-plot", cwd=tmp_path)
        assert report.returncode == 0 and "status running" in report.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 143
    assert "status interrupted" in run_cli("report", str(out), "--no-plot").stdout


def test_kill_9_with_steering_in_flight_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """A weight-decay change applied after the last checkpoint, then kill -9: the resumed run applies it
    again at the same step, so its rows equal a run that was steered the same way and never died."""
    profile = write_tiny_profile(tmp_path, max_steps=1_000_000)
    out = tmp_path / "run"
    (tmp_path / "tiny.toml").write_text(profile.read_text().replace("checkpoint_every = 40",
                                                                    "checkpoint_every = 200"))
    proc = _spawn(["run", str(profile), "--headless", "--out", str(out)], tmp_path)
    try:
        _until(lambda: 200 in checkpoints(out), proc)
        cid = append_command(out, "set_weight_decay", 3.0, source="test")
        acked = lambda: [e for e in read_events(out) if e.get("source") == f"control:{cid}"]  # noqa: E731
        _until(acked, proc)
        step = acked()[0]["step"]
        _until(lambda: read_rows(out)[-1]["step"] > step + 40, proc)
    finally:
        proc.kill()  # SIGKILL: no summary, no last checkpoint
        proc.wait(timeout=60)
    last = max(checkpoints(out))  # read after the kill: no checkpoint can land between this and the kill
    if last > step:
        pytest.skip("a checkpoint landed after the command (slow machine); nothing to lose")
    assert not (out / layout.SUMMARY).exists()
    assert "status crashed" in run_cli("report", str(out), "--no-plot").stdout
    resumed = run_cli("run", "--resume", str(out), "--headless", "--steps", str(step + 100), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    cfg = load_config(str(profile), ["train.max_steps=" + str(step + 100)])
    ref = RunSession.new(cfg, tmp_path / "ref")
    ref.open()
    ref.engine.replay_at(step, Command("set_weight_decay", 3.0, source="test"))
    ref.run(handle_signals=False)
    assert _strip(read_rows(out)) == _strip(read_rows(tmp_path / "ref"))
    # last == step: the command was applied at the checkpoint's own step, after the checkpoint was written
    assert last <= step and all(r["weight_decay"] == 3.0 for r in read_rows(out) if r["step"] > step)


def test_sigint_while_starting_is_one_line_and_exit_130(tmp_path: Path) -> None:
    proc = _spawn(["run", "quick", "--headless", "--out", str(tmp_path / "r")], tmp_path)
    time.sleep(0.3)  # inside start-up: importing torch takes longer than this
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err
    run = tmp_path / "r"
    assert not run.exists() or not layout.is_run_dir(run) or "interrupted" in (run / "summary.json").read_text()


@pytest.mark.parametrize(("overrides", "fragment"), [
    (["optim.weight_decay=nan"], "optim.weight_decay: expected a finite number"),
    (["optim.lr=inf"], "optim.lr: expected a finite number"),
    (["optim.lr=1e30"], "optim.lr: expected a number in (0, 10]"),
    (["task.p=618970019642690137449562111"], "task.p: expected an integer of at most"),
    (["task.p=65537"], "task.p: expected a prime from 3 to 65521"),
    (["task.p=10007"], "this run needs about"),
    (["model.d_model=10000000"], "this run needs about"),
    (["task.frac_train=1e-9"], "task.frac_train: expected a fraction that leaves pairs in both splits"),
    (["train.device=tpu7"], "train.device: expected"),
])
def test_bad_configs_are_one_line_and_exit_2(tmp_path: Path, overrides: list[str], fragment: str) -> None:
    args = ["run", "quick", "--headless", "--steps", "1", "--out", str(tmp_path / "r")]
    for item in overrides:
        args += ["--set", item]
    proc = run_cli(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and fragment in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def _finished_run(tmp_path: Path) -> Path:
    profile = write_tiny_profile(tmp_path, max_steps=40)
    out = tmp_path / "run"
    assert run_cli("run", str(profile), "--headless", "--out", str(out), cwd=tmp_path).returncode == 0
    return out


@pytest.mark.parametrize(("name", "content", "command", "fragment"), [
    ("config.json", "", "report", "config.json: not valid JSON"),
    ("config.json", "[1, 2]", "report", "config.json: expected a JSON object"),
    ("config.json", '{"task": {"p": "many"}}', "report", "task.p: expected an integer"),
    ("config.json", '{"task": 7}', "resume", "expected a table [task]"),
    ("summary.json", "garbage", "report", None),
    ("summary.json", '{"status": 3, "t_grok": "soon"}', "report", None),
    ("metrics.jsonl", '{"val_acc": 0.5}\n{"step": "x"}\nnot json\n', "report", None),
])
def test_garbage_records_are_one_line_or_ignored(tmp_path: Path, name: str, content: str, command: str,
                                                 fragment: str | None) -> None:
    out = _finished_run(tmp_path)
    with (out / name).open("a" if name.endswith("jsonl") else "w") as f:
        f.write(content)
    args = ["report", str(out), "--no-plot"] if command == "report" else ["run", "--resume", str(out), "--headless"]
    proc = run_cli(*args, cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    if fragment is None:
        assert proc.returncode == 0 and "evaluations" in proc.stdout
    else:
        assert proc.returncode == 2 and fragment in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize("damage", ["no step", "wrong shapes", "unknown version"])
def test_crafted_checkpoints_are_one_line_and_exit_2(tmp_path: Path, damage: str) -> None:
    out = _finished_run(tmp_path)
    path = checkpoints(out)[40]
    raw = torch.load(path, weights_only=True)
    if damage == "no step":
        del raw["step"]
    elif damage == "wrong shapes":
        raw["model"]["W_E"] = torch.zeros(3, 3)
    else:
        raw["version"] = 7
    for p in checkpoints(out).values():
        torch.save(raw, p)
    proc = run_cli("run", "--resume", str(out), "--headless", "--steps", "80", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(path.name) in proc.stderr or "checkpoint" in proc.stderr


def test_fork_and_sweep_into_an_unwritable_folder_are_one_line(tmp_path: Path) -> None:
    """An --out that cannot be created (it lies under a file; a read-only folder does not stop root)."""
    out = _finished_run(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args in (["fork", str(out), "--at", "20", "--wd", "1", "--out", str(blocker / "f")],
                 ["sweep", str(write_tiny_profile(tmp_path)), "--grid", "optim.lr=1e-3", "--out", str(blocker / "s")]):
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cannot write" in proc.stderr, proc.stderr


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed_from_step_0(tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path, max_steps=1_000_000)
    (tmp_path / "tiny.toml").write_text(profile.read_text().replace("checkpoint_every = 40",
                                                                    "checkpoint_every = 1000000"))
    out = tmp_path / "run"
    proc = _spawn(["run", str(profile), "--headless", "--out", str(out)], tmp_path)
    try:
        _until(lambda: len(read_rows(out)) >= 2, proc)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    resumed = run_cli("run", "--resume", str(out), "--headless", "--steps", "60", cwd=tmp_path)
    assert resumed.returncode == 0 and "starting it again from step 0" in resumed.stderr, resumed.stderr
    assert [r["step"] for r in read_rows(out)] == [0, 20, 40, 60]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_is_one_line_a_failed_summary_and_a_resumable_run(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "6m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * (4 * 2**20))  # leaves room for about one checkpoint of the quick model
        out = disk / "run"
        # The 1-layer variant: its checkpoint (about 1.8 MB) fits once beside the ballast, not twice.
        proc = run_cli("run", "quick", "--headless", "--out", str(out), "--set", "train.checkpoint_every=100",
                       "--set", "model.n_layers=1", cwd=tmp_path, timeout=300)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "no space left" in proc.stderr.lower() and "--resume" in proc.stderr
        assert json.loads((out / "summary.json").read_text())["status"] == "failed"
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
        kept = max(checkpoints(out))
        ballast.unlink()  # space is back
        resumed = run_cli("run", "--resume", str(out), "--headless", "--steps", str(kept + 100), cwd=tmp_path,
                          timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert read_rows(out)[-1]["step"] == kept + 100
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_duplicate_sweep_values_run_once(tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path, max_steps=20)
    proc = run_cli("sweep", str(profile), "--grid", "optim.lr=1e-3,1e-3,2e-3", "--out", str(tmp_path / "s"),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "duplicate" in proc.stderr and json.loads((tmp_path / "s" / "sweep.json").read_text())["n_runs"] == 2
