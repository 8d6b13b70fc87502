"""`grokmon ls`, `grokmon diff` and `watch`'s choice of view, on a folder of hand-made run directories: a live
one (this process owns it), finished ones, a crashed one, a half-written one and one that is only starting."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY, run_cli
from grokmon.config import apply_overrides, load_config
from grokmon.rundir.records import METRIC_ROW_KEYS
from grokmon.runindex import format_age, list_runs, watch_compares

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------------------------------------
# hand-made run directories (also used by test_figures.py and test_report_experiments.py)


def synthetic_rows(last: int = 1000, every: int = 50, grok_at: int = 600, wd: float = 1.0,
                   wd_change: tuple[int, float] | None = None) -> list[dict[str, Any]]:
    """metrics.jsonl rows with every schema key: memorised by step 100, val_acc crossing 0.95 at `grok_at`,
    the probe's keys null on every other evaluation (metrics_every 2) but phase."""
    rows = []
    for i, step in enumerate(range(0, last + 1, every)):
        probed = i % 2 == 0
        val = 0.05 if step < grok_at - 2 * every else 0.5 if step < grok_at else 0.97 + 0.0001 * i
        w = wd_change[1] if wd_change and step > wd_change[0] else wd
        row: dict[str, Any] = {
            "step": step, "wall_s": round(0.01 * step + 0.123, 3), "train_loss": 4.0 / (1 + step) + 1e-4,
            "train_acc": 0.3 if step < 100 else 1.0, "val_loss": 4.5 - 4 * val, "val_acc": val, "lr": 1e-3,
            "weight_decay": w,
            "fsd": 0.1 + step / (2 * last) if probed else None, "fsd_p": 0.5 / (1 + step) if probed else None,
            "fsd_z": 0.1 * i if probed else None, "fsd_sync": (step > 200) if probed else None,
            "top_freqs": [[14, 0.31], [7, 0.125]] if probed else None,
            "wl_top_freqs": [[3, 0.2], [9, 0.1]] if probed else None, "key_freqs": [14, 7] if probed else None,
            "restricted_loss": 1.0 / (1 + i) if probed else None, "excluded_loss": 0.01 * i if probed else None,
            "gini_embed": 0.02 * i if probed else None, "gini_wl": None,  # an attention-only model has none
            "weight_norm": 2000.0 - step if probed else None,
            "phase": "memorisation" if step < 300 else "generalised" if val >= 0.95 else "circuit formation",
        }
        assert tuple(row) == METRIC_ROW_KEYS  # the schema this file fakes
        rows.append(row)
    return rows


def config_dict(*overrides: str) -> dict[str, Any]:
    return apply_overrides(load_config("default"), [*TINY, *overrides]).to_dict()


def write_run(path: Path, rows: list[dict[str, Any]] | None = None, *, summary: dict[str, Any] | None = None,
              owner: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
              events: list[dict[str, Any]] = (), age_s: float | None = None) -> Path:
    """A run directory as a run leaves it; `age_s` sets every file's modification time that far back."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config if config is not None else config_dict(), indent=2))
    (path / "run.json").write_text(json.dumps({"format": 1, "starts": [{"step": 0, "time": 1.7e9}]}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows or []))
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    if owner is not None:
        (path / "owner.json").write_text(json.dumps(owner))
    if age_s is not None:
        set_age(path, age_s)
    return path


def set_age(path: Path, age_s: float) -> None:
    t = time.time() - age_s
    for f in path.iterdir():
        if f.is_file():
            os.utime(f, (t, t))


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def summary_of(rows: list[dict[str, Any]], status: str = "completed", t_grok: int | None = 600,
               lead: int | None = 250) -> dict[str, Any]:
    return {"status": status, "steps": rows[-1]["step"], "wall_s": 12.5, "final": rows[-1], "best": {},
            "t_grok": t_grok, "t_fsd": None if lead is None else t_grok - lead, "lead": lead}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """runs/: live (owned by this process, heartbeat now), done (2 h old, with a fork branch under it),
    crashed (no summary, owner pid gone, 5 days old), half (garbage config, broken lines, garbage summary,
    3 min old), starting (no config.json yet) and a sweep folder with one run."""
    top = tmp_path / "runs"
    rows = synthetic_rows()
    write_run(top / "done", rows, summary=summary_of(rows), age_s=7200)
    write_run(top / "done" / "forks" / "wd_2", synthetic_rows(800), config=config_dict("optim.weight_decay=2"),
              summary=summary_of(synthetic_rows(800), t_grok=650, lead=None), age_s=3600 * 3)
    write_run(top / "crashed", rows[:5], owner={"pid": dead_pid(), "host": socket.gethostname(),
                                                "started": 1.0, "heartbeat": time.time() - 5 * 86400},
              age_s=5 * 86400 + 60)
    half = write_run(top / "half", rows[:3], age_s=180)
    (half / "config.json").write_text('{"task": {"op": "add", "p": ')  # cut mid-write
    with (half / "metrics.jsonl").open("a") as f:
        f.write("not json at all\n[1, 2]\n{\"step\": 160, \"wall_s\": 1.")  # garbage, a list, a partial line
    (half / "summary.json").write_text("{garbage")
    set_age(half, 180)
    write_run(top / "sweep-x" / "p23-s0", rows[:8], summary=summary_of(rows[:8], status="stopped", t_grok=None,
                                                                    lead=None), age_s=86400 * 2)
    (top / "sweep-x" / "sweep.json").write_text("{}")
    starting = top / "starting"
    starting.mkdir()
    (starting / ".lock").write_text("")
    (starting / "owner.json").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                     "started": time.time(), "heartbeat": time.time()}))
    set_age(starting, 30)
    write_run(top / "live", rows[:9], owner={"pid": os.getpid(), "host": socket.gethostname(),
                                             "started": time.time() - 60, "heartbeat": time.time()})
    (top / "notes").mkdir()  # a folder with no run files is not a run
    (top / "notes" / "readme.txt").write_text("hello")
    return top


def _table(stdout: str) -> dict[str, list[str]]:
    """ls's table by run name; the task cell "add 23" is one cell."""
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["NAME", "PROFILE", "TASK", "STATUS", "STEPS", "T_GROK", "LEAD", "AGE"]
    cells = [line.replace("add 23", "add_23").split() for line in lines[1:]]
    assert all(len(c) == 8 for c in cells), stdout
    return {c[0]: c for c in cells}


def test_ls_lists_every_run_newest_first_with_its_status(runs: Path) -> None:
    proc = run_cli("ls", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "Traceback" not in proc.stdout
    table = _table(proc.stdout)
    assert list(table) == ["live", "starting", "half", "done", "done/forks/wd_2", "sweep-x/p23-s0", "crashed"]
    assert table["live"][:7] == ["live", "default", "add_23", "running", "400", "-", "-"]
    assert table["live"][7].endswith("s") and int(table["live"][7][:-1]) < 60  # seconds: the CLI's start-up
    assert table["done"] == ["done", "default", "add_23", "completed", "1000", "600", "250", "2h"]
    assert table["done/forks/wd_2"][3:7] == ["completed", "800", "650", "-"]
    assert table["crashed"][3:] == ["crashed", "200", "-", "-", "5d"]
    assert table["sweep-x/p23-s0"][3:] == ["stopped", "350", "-", "-", "2d"]
    # Unreadable parts are "?", the rest still shows: the usable rows give the step; no summary counts.
    assert table["half"] == ["half", "?", "?", "unknown", "100", "-", "-", "3m"]  # no owner.json: liveness unknown
    assert table["starting"][1:5] == ["-", "-", "starting", "-"]
    assert "notes" not in table


def test_ls_json_is_one_object_per_run(runs: Path) -> None:
    proc = run_cli("ls", str(runs), "--json")
    assert proc.returncode == 0, proc.stderr
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    by_name = {o["name"]: o for o in objs}
    assert len(objs) == 7 and by_name["done"]["t_grok"] == 600 and by_name["done"]["lead"] == 250
    assert by_name["done"]["task"] == "add 23" and by_name["done"]["profile"] == "default"
    assert by_name["done"]["status"] == "completed"
    assert 7100 < by_name["done"]["age_s"] < 7300
    assert by_name["half"]["unreadable"] == ["profile", "task"] and by_name["half"]["profile"] is None
    assert by_name["live"]["status"] == "running" and by_name["crashed"]["status"] == "crashed"


def test_ls_survives_hostile_files(runs: Path) -> None:
    """Wrong JSON types everywhere, an owner with an absurd pid, a metrics file of garbage lines only."""
    bad = runs / "hostile"
    write_run(bad, config={"profile": 7, "task": [1, 2], "metrics": "x"}, summary=None)
    (bad / "metrics.jsonl").write_text("garbage\n{\"step\": -1}\n")
    (bad / "summary.json").write_text(json.dumps({"status": "completed", "t_grok": "soon", "steps": [1]}))
    (bad / "owner.json").write_text(json.dumps({"pid": 10**40, "host": socket.gethostname(),
                                               "heartbeat": time.time()}))
    line = next(r for r in list_runs(runs) if r.name == "hostile")
    # summary.json's status is readable; the absurd pid is simply not alive (lock.owner_alive)
    assert line.unreadable == ["profile", "task", "steps", "t_grok", "lead"] and line.status == "completed"
    proc = run_cli("ls", str(runs))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert _table(proc.stdout)["hostile"][1:7] == ["?", "?", "completed", "?", "?", "?"]


def test_ls_of_an_empty_or_missing_folder_says_so(tmp_path: Path) -> None:
    empty = run_cli("ls", str(tmp_path))
    assert empty.returncode == 0 and empty.stdout == ""
    assert empty.stderr.strip() == f"grokmon: no runs under {tmp_path}"
    missing = run_cli("ls", cwd=tmp_path)  # the default folder, runs/, does not exist here
    assert missing.returncode == 2 and missing.stderr.strip() == "grokmon: error: runs: no such folder"


def test_format_age() -> None:
    assert [format_age(s) for s in (None, -3, 12, 200, 7200, 5 * 86400)] == ["?", "0s", "12s", "3m", "2h", "5d"]


def test_diff_prints_the_differing_keys_and_counts_the_rest(runs: Path) -> None:
    proc = run_cli("diff", str(runs / "done"), str(runs / "done" / "forks" / "wd_2"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    equal = int(lines[-1].split()[0])
    assert lines == ["optim.weight_decay: 1.0 -> 2.0", f"{equal} config keys equal, 1 differ"] and equal > 30
    same = run_cli("diff", str(runs / "done"), str(runs / "done"))
    assert same.stdout.strip().splitlines() == [f"{equal + 1} config keys equal, 0 differ"]


def test_diff_shows_weight_decay_changed_by_interventions(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", synthetic_rows(300))
    b = write_run(tmp_path / "b", synthetic_rows(300, wd_change=(100, 4.0)), config=config_dict("train.seed=3"))
    lines = run_cli("diff", str(a), str(b)).stdout.splitlines()
    assert lines == ["train.seed: 0 -> 3", f"{int(lines[1].split()[0])} config keys equal, 1 differ",
                     "at the last evaluation (interventions included): weight_decay 1.0 -> 4.0"]


def test_diff_of_something_that_is_not_a_run_is_one_line_exit_2(runs: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from grokmon import cli

    for args in ((str(runs / "done"), str(tmp_path / "nope")), (str(runs / "notes"), str(runs / "done")),
                 (str(runs / "half"), str(runs / "done"))):
        assert cli.main(["diff", *args]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("grokmon: error: "), err
    assert "half/config.json: not a readable JSON object" in err


# ---------------------------------------------------------------------------------------------
# watch: which view


def test_watch_compares_several_runs_or_a_folder_of_runs(runs: Path, tmp_path: Path) -> None:
    assert not watch_compares([runs / "done"])  # a run (it has runs under forks/, still one run)
    assert not watch_compares([tmp_path / "not-yet"])  # will become a run directory
    assert not watch_compares([runs / "starting"])  # a run that is starting
    assert watch_compares([runs / "done", runs / "live"])
    assert watch_compares([runs])  # a folder with run directories in it
    assert watch_compares([runs / "sweep-x"])  # sweep.json
    fork = tmp_path / "f"
    fork.mkdir()
    (fork / "fork.json").write_text("{}")
    assert watch_compares([fork])


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[Any] = []


def test_watch_dispatches_to_the_compare_view_or_the_single_run_view(runs: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from grokmon import cli

    seen = _Recorder()
    compare = types.ModuleType("grokmon.tui.compare")
    compare.run_compare = lambda paths: seen.calls.append(("compare", paths)) or 7  # type: ignore[attr-defined]
    app = types.ModuleType("grokmon.tui.app")

    class FakeApp:
        def __init__(self, source: Any) -> None:
            self.source = source

        def run(self) -> None:
            seen.calls.append(("single", self.source))

    app.GrokmonApp = FakeApp  # type: ignore[attr-defined]
    source = types.ModuleType("grokmon.tui.source")
    source.WatchSource = lambda path: path  # type: ignore[attr-defined]
    for name, module in (("grokmon.tui.compare", compare), ("grokmon.tui.app", app), ("grokmon.tui.source", source)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(cli, "_has_terminal", lambda: True)
    assert cli.main(["watch", str(runs / "done"), str(runs / "live")]) == 7
    assert cli.main(["watch", str(runs)]) == 7
    assert cli.main(["watch", str(runs / "done")]) == 0
    assert seen.calls == [("compare", [runs / "done", runs / "live"]), ("compare", [runs]), ("single", runs / "done")]


def test_a_run_without_owner_json_is_unknown_not_crashed(tmp_path: Path) -> None:
    """A run directory written before ownership records (or not yet claimed) may be training right now:
    its status is unknown, steering says why, and an owner.json with a gone pid still reads crashed."""
    from grokmon.errors import GrokmonError
    from grokmon.events import Command
    from grokmon.rundir.lock import liveness, run_status
    from grokmon.tui.source import WatchSource

    old = write_run(tmp_path / "old", synthetic_rows()[:5])
    assert (liveness(old, None), run_status(old, None)) == ("unknown", "unknown")
    gone = write_run(tmp_path / "gone", synthetic_rows()[:5], owner={"pid": dead_pid(), "host": socket.gethostname(),
                                                                       "started": 1.0, "heartbeat": 2.0})
    assert (liveness(gone, None), run_status(gone, None)) == ("dead", "crashed")
    assert (liveness(old, "completed"), run_status(old, {"status": "completed"})) == ("finished", "completed")
    with pytest.raises(GrokmonError, match=r"not sent: the run has no owner\.json .* unknown; commands go only"):
        WatchSource(old).send(Command("set_weight_decay", 2.0, source="test"))
    assert not (old / "control.jsonl").exists()
