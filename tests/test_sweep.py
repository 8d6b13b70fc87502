"""`grokmon sweep`: the grid x seeds expansion, parallel local processes, the summary files, a rerun that
finishes only what is missing, and the Ray backend against a local Ray instance started here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from grokmon.config import load_config
from grokmon.errors import ConfigError
from grokmon.experiments.sweep import collect_sweep, parse_grid, parse_seeds, plan_sweep, run_name, sweep_markdown
from grokmon.rundir.readers import read_jsonl

pytestmark = pytest.mark.integration


def test_grid_and_seed_parsing() -> None:
    assert parse_grid(["task.p=53,71", "optim.weight_decay=1"]) == [("task.p", ["53", "71"]),
                                                                  ("optim.weight_decay", ["1"])]
    for bad, msg in ((["task.p"], "expected section.key"), (["task.p="], "at least one value"),
                     (["task.seed=1,2"], "seeds come from --seeds"), (["task.p=5", "task.p=7"], "given twice")):
        with pytest.raises(ConfigError, match=msg):
            parse_grid(bad)
    assert parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("a", "", "1,1", "-1"):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)
    assert run_name([("task.p", "53"), ("optim.weight_decay", "0.5")], 2) == "p53-weight_decay0.5-s2"


def test_plan_validates_every_config_before_running(tiny_profile: Path, tmp_path: Path) -> None:
    base = load_config(str(tiny_profile))
    jobs, meta = plan_sweep(base, parse_grid(["task.p=23,29"]), [0, 1], tmp_path)
    assert [j.name for j in jobs] == ["p23-s0", "p23-s1", "p29-s0", "p29-s1"]
    assert all(j.config["task"]["seed"] == j.config["model"]["seed"] == j.config["train"]["seed"] == m["seed"]
               for j, m in zip(jobs, meta))
    with pytest.raises(ConfigError, match="task.p"):
        plan_sweep(base, parse_grid(["task.p=23,24"]), [0], tmp_path)  # 24 is not prime


def test_summary_mean_lead_and_sign_test() -> None:
    from grokmon.experiments.jobs import JobResult, RunJob

    jobs = [RunJob(f"r{i}", f"/nonexistent/r{i}", {}) for i in range(3)]
    meta = [{"name": f"r{i}", "point": {"task.p": "53"}, "seed": i} for i in range(3)]
    report = collect_sweep({"profile": "x", "grid": {"task.p": ["53"]}, "seeds": [0, 1, 2], "backend": "local"},
                           jobs, meta, [JobResult("r0", "", "failed")])
    assert report["runs"][0]["status"] == "failed" and report["runs"][1]["status"] == "not-started"
    assert report["mean_lead"] is None and "No run has a lead" in sweep_markdown(report)


def test_local_sweep_in_parallel_processes_then_a_rerun_skips_finished_runs(tiny_profile: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    proc = run_cli("sweep", str(tiny_profile), "--grid", "task.p=23,29", "--seeds", "0,1", "--jobs", "2",
                   "--set", "train.max_steps=60", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "sweep.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["p23-s0", "p23-s1", "p29-s0", "p29-s1"]
    assert all(r["status"] == "completed" and r["steps"] == 60 for r in report["runs"])
    for r in report["runs"]:
        cfg = json.loads((Path(r["run_dir"]) / "config.json").read_text())
        assert cfg["task"]["p"] == int(r["point"]["task.p"]) and cfg["model"]["seed"] == r["seed"]
        assert read_jsonl(Path(r["run_dir"]) / "metrics.jsonl")[-1]["step"] == 60
    md = (out / "sweep.md").read_text()
    assert "| p23-s0 | 23 | 0 | completed |" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1  # header, separator and rows agree
    assert "| run | task.p | seed | status" in proc.stdout
    # Seeds differ: different splits, different numbers.
    rows = [read_jsonl(out / n / "metrics.jsonl")[-1]["train_loss"] for n in ("p23-s0", "p23-s1")]
    assert rows[0] != rows[1]

    shown = run_cli("report", str(out))
    assert shown.returncode == 0 and "| p23-s1 | 23 | 1 | completed |" in shown.stdout

    mtime = (out / "p23-s0" / "metrics.jsonl").stat().st_mtime_ns
    again = run_cli("sweep", str(tiny_profile), "--grid", "task.p=23,29", "--seeds", "0,1",
                    "--set", "train.max_steps=60", "--out", str(out))
    assert again.returncode == 0 and again.stderr.count("skipped-done") == 4
    assert (out / "p23-s0" / "metrics.jsonl").stat().st_mtime_ns == mtime

    other = run_cli("sweep", str(tiny_profile), "--grid", "task.p=23", "--out", str(out))
    assert other.returncode == 2 and "already holds a different sweep" in other.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "expected at least one --grid"),
    (["--grid", "task.q=1"], "task.q"),
    (["--grid", "task.p=23", "--address", "x:1"], "--address: only applies to --backend ray"),
])
def test_sweep_input_errors(tiny_profile: Path, tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_cli("sweep", str(tiny_profile), *args, "--out", str(tmp_path / "s"))
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_ray_backend_on_a_local_ray_instance(tiny_profile: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'grokmon[ray]'; CI installs it)")
    from grokmon.experiments.sweep import run_sweep

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        report = run_sweep(str(tiny_profile), ["task.p=23,29"], [0], out=out, overrides=["train.max_steps=40"],
                           backend="ray", log=lambda line: None)
    finally:
        ray.shutdown()
    assert report["backend"] == "ray" and [r["status"] for r in report["runs"]] == ["completed", "completed"]
    for r in report["runs"]:
        run_dir = Path(r["run_dir"])
        assert run_dir.parent == out  # files came back from the worker's scratch directory
        assert read_jsonl(run_dir / "metrics.jsonl")[-1]["step"] == 40
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
        assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000040.pt"]
    assert (out / "sweep.md").is_file()


def test_running_line_reads_each_runs_last_row(tmp_path: Path) -> None:
    from grokmon.experiments.jobs import RunJob, running_line

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.jsonl").write_text('{"step": 100, "val_acc": 0.25}\n{"step": 200, "val_acc": 0.5}\n{"st')
    line = running_line([RunJob("a", str(tmp_path / "a"), {}), RunJob("b", str(tmp_path / "b"), {})])
    assert line == "running: a step 200 val_acc 0.500, b starting"


def test_ray_backend_without_ray_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from grokmon.experiments.jobs import RunJob, run_jobs

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'grokmon\[ray\]'"):
        run_jobs([RunJob("a", "/nonexistent/a", {})], backend="ray")


@pytest.mark.parametrize(("status", "done"), [("completed", True), ("diverged", True), ("stopped", False),
                                              ("interrupted", False), ("failed", False), (None, False)])
def test_a_rerun_skips_completed_and_diverged_runs_and_resumes_the_others(tmp_path: Path, status: str | None,
                                                                         done: bool) -> None:
    """A diverged run would replay the same steps to the same non-finite loss: training it again is waste."""
    from grokmon.experiments.jobs import is_done

    run = tmp_path / "run"
    run.mkdir()
    if status is not None:
        (run / "summary.json").write_text(json.dumps({"status": status, "steps": 10}))
    assert is_done(run) is done
