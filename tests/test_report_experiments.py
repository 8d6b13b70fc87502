"""`grokmon report` on a fork directory (its table, dt against 1/lambda and every branch's val_acc overlaid) and
on a sweep directory (its table and each run's lead), from hand-made directories; --no-plot leaves the plots out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from grokmon.experiments.fork import analyse_branch, analyse_fork
from grokmon.plots import fork_curves_plot, sweep_lead_plot
from test_ls_diff import config_dict, summary_of, synthetic_rows, write_run

pytestmark = pytest.mark.integration

FORK_STEP = 300
BRANCHES = {1.0: 800, 2.0: 550, 5.0: 400}  # weight decay -> t_grok: dt = 500, 250, 100 = 500 / lambda


def write_fork(tmp_path: Path) -> Path:
    """parent/forks/ with a branch per weight decay and the fork.json `grokmon fork` would write for them."""
    forks = tmp_path / "parent" / "forks"
    branches = []
    for wd, t_grok in BRANCHES.items():
        name = f"wd_{wd:g}"
        rows = synthetic_rows(t_grok + 200, grok_at=t_grok, wd_change=(FORK_STEP, wd))
        write_run(forks / name, rows, summary=summary_of(rows, t_grok=t_grok, lead=None),
                  config=config_dict("train.stop_after_grok=200"))
        line = analyse_branch(FORK_STEP, wd, rows)
        line.update(name=name, run_dir=str(forks / name), status="completed")
        branches.append(line)
    report = {"run_dir": str(tmp_path / "parent"), "task": {"op": "add", "p": 23}, "fork_step": FORK_STEP,
              "fork_rule": "given step", "lambda0": 1.0, "relative": False, "grid": list(BRANCHES),
              "weight_decays": list(BRANCHES), "parent": {"t_grok": 800, "t_fsd": 350, "t_fsd_online": 400},
              "after_grok": 200, "fork_state": "", "branches": branches, "fits": analyse_fork(branches)}
    (forks / "fork.json").write_text(json.dumps(report, indent=2))
    return forks


def sweep_report(tmp_path: Path) -> dict[str, Any]:
    runs = [{"name": name, "point": {"optim.weight_decay": wd}, "seed": seed, "run_dir": str(tmp_path / name),
             "status": "completed", "t_grok": t_grok, "t_fsd": None if lead is None else t_grok - lead,
             "t_fsd_online": None, "t_excluded": None, "lead": lead, "steps": 1000, "wall_s": 10.0}
            for name, wd, seed, t_grok, lead in (("weight_decay1-s0", "1", 0, 900, 300),
                                                 ("weight_decay1-s1", "1", 1, 950, -50),
                                                 ("weight_decay2-s0", "2", 0, 500, 120),
                                                 ("weight_decay2-s1", "2", 1, None, None))]
    return {"profile": "tiny", "grid": {"optim.weight_decay": ["1", "2"]}, "seeds": [0, 1], "overrides": [],
            "backend": "local", "sweep_dir": str(tmp_path), "runs": runs, "n_runs": 4, "n_grokked": 3,
            "mean_lead": 370 / 3, "n_leads": 3, "n_positive": 2, "sign_test_n": 3, "sign_test_p": 1.0}


def write_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps(sweep_report(sweep)))
    return sweep


def _frame(text: str) -> bool:
    return all(c in text for c in "┌┐└┘")


def test_fork_report_overlays_each_branchs_val_acc(tmp_path: Path) -> None:
    forks = write_fork(tmp_path)
    proc = run_cli("report", str(forks))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "| lambda | status" in out and "C = 500.0, R^2 = 1.000" in out  # the table and the fit
    fit_plot = out.split("dt against 1/lambda (fork at step 300)", 1)[1].split("val_acc after the fork")[0]
    assert _frame(fit_plot) and "key:  line: dt = 500 / lambda (R^2 1.000)  ● stable" in fit_plot
    curves = out.split("val_acc after the fork at step 300", 1)
    assert len(curves) == 2 and _frame(curves[1]), out
    assert "steps since the fork" in curves[1]
    key = curves[1].strip().splitlines()[-1]
    assert key == "key:  • wd_1 (weight decay 1)  x wd_2 (weight decay 2)  + wd_5 (weight decay 5)"
    plain = run_cli("report", str(forks), "--no-plot").stdout
    assert "| lambda | status" in plain and not _frame(plain) and "val_acc after the fork" not in plain


def test_fork_curves_start_at_the_fork_and_keep_their_markers() -> None:
    branches = [(f"wd_{wd:g}", wd, synthetic_rows(t + 200, grok_at=t)) for wd, t in BRANCHES.items()]
    text = fork_curves_plot(branches, FORK_STEP, width=80, height=16, color=False)
    body = text.split("└", 1)[0]
    for marker in "•x+":  # each branch's line is drawn with its own marker
        assert marker in body
    ticks = text.split("└", 1)[1].splitlines()[1].split()
    assert ticks == ["0", "200", "400", "600"]  # steps since the fork; the longest branch ends at 700
    moved = fork_curves_plot([("wd_1", 1.0, [])], FORK_STEP, width=60, color=False)
    assert moved.strip().splitlines()[-1] == "key:  • wd_1 (weight decay 1): no evaluation yet"


def test_sweep_report_plots_each_runs_lead(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path)
    proc = run_cli("report", str(sweep))
    assert proc.returncode == 0, proc.stderr
    plot = proc.stdout.split("lead = t_grok - t_fsd (steps) per run", 1)
    assert len(plot) == 2 and _frame(plot[1])
    bars = [line.split("┤")[0].strip() for line in plot[1].splitlines() if "┤" in line]
    assert bars == ["weight_decay1-s0", "weight_decay1-s1", "weight_decay2-s0"]  # the sweep's order
    assert plot[1].strip().splitlines()[-1] == "no lead (needs t_grok and an FSD ceiling): weight_decay2-s1"
    plain = run_cli("report", str(sweep), "--no-plot").stdout
    assert "| weight_decay1-s0 |" in plain and not _frame(plain)


def test_sweep_without_any_lead_says_so_instead_of_an_empty_frame(tmp_path: Path) -> None:
    report = sweep_report(tmp_path)
    for r in report["runs"]:
        r["lead"] = None
    assert sweep_lead_plot(report, width=60, color=False).splitlines()[0] == "No run has a lead yet: nothing to plot."
