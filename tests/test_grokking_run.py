"""One real grokking run: the quick profile, headless, as a user would start it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from grokmon.rundir.readers import read_jsonl


@pytest.mark.slow
def test_quick_profile_groks(tmp_path: Path) -> None:
    out = tmp_path / "quick"
    proc = run_cli("run", "quick", "--headless", "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["t_grok"] is not None
    rows = read_jsonl(out / "metrics.jsonl")
    first_memorised = next(r["step"] for r in rows if r["train_acc"] >= 0.99)
    assert first_memorised < summary["t_grok"]  # memorise first, generalise later
    assert rows[-1]["val_acc"] >= 0.95
    assert summary["status"] == "completed" and summary["steps"] == summary["t_grok"] + 300

    # FSD: chance level at init (seed 0 sits at the top of the init spread, 0.29; see docs/metrics.md),
    # high and significant once grokked; the online detector fires before t_grok.
    probed = [r for r in rows if r["fsd"] is not None]
    assert probed[0]["step"] == 0 and abs(probed[0]["fsd"]) < 0.35
    after = [r for r in probed if r["step"] >= summary["t_grok"]]
    assert after and all(r["fsd"] > 0.9 and r["fsd_p"] < 0.05 and r["fsd_sync"] for r in after)
    assert summary["t_fsd_online"] is not None and summary["t_fsd_online"] < summary["t_grok"]
    assert rows[-1]["phase"] == "generalised" and rows[0]["phase"] == "memorisation"
    assert probed[-1]["restricted_loss"] < probed[-1]["excluded_loss"]  # the Fourier circuit carries the answer

    report = run_cli("report", str(out), "--json")
    assert report.returncode == 0
    assert json.loads(report.stdout)["t_grok"] == summary["t_grok"]

    # The weight-decay fork at the FSD ceiling: more weight decay, earlier grokking (docs/metrics.md).
    fork = run_cli("fork", str(out), "--wd", "1,2", "--eval-every", "25", "--after-grok", "0", "--jobs", "2", timeout=600)
    assert fork.returncode == 0, fork.stderr
    result = json.loads((out / "forks" / "fork.json").read_text())
    assert result["fork_step"] in (summary["t_fsd"], summary["t_fsd_online"])
    one, two = result["branches"]
    assert 0 < two["dt"] < one["dt"]
    assert result["fits"]["all_grokked"]["n"] == 2 and result["fits"]["all_grokked"]["monotone"]
