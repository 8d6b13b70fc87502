"""One real grokking run: the quick profile, headless, as a user would start it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from grokmon.sinks.rundir import read_jsonl


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
