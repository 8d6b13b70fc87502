"""The report's pieces on synthetic input: the reasons for missing events and the step axis's ticks."""

from __future__ import annotations

import pytest

from grokmon.metrics.runs import NOT_FROM_CHECKPOINTS, run_events, why_missing
from grokmon.plots import format_steps, run_plot, step_ticks

pytestmark = pytest.mark.unit


def _rows(val_acc: float, train_acc: float = 1.0, fsd: float | None = 0.2) -> list[dict]:
    return [{"step": s, "val_acc": val_acc, "train_acc": train_acc if s > 100 else 0.5, "fsd": fsd,
             "fsd_p": 0.5 if fsd is not None else None} for s in range(0, 1000, 50)]


def test_a_best_just_short_of_a_threshold_does_not_read_as_reaching_it() -> None:
    rows = _rows(0.9899)  # grokked at 0.95, never 0.99: rounding would print 0.99
    ev = run_events(rows)
    assert ev["t_grok"] == 0 and ev["t_grok_99"] is None
    assert why_missing("t_grok_99", rows, ev, running=False) == "not reached (best val_acc 0.98)"


def test_missing_events_say_why_while_running_and_after() -> None:
    rows = _rows(0.12)
    ev = run_events(rows)
    assert why_missing("t_grok", rows, ev, running=True) == "not yet (best val_acc 0.12)"
    assert why_missing("t_grok", rows, ev, running=False) == "did not grok (best val_acc 0.12)"
    assert why_missing("t_grok_99", rows, ev, running=False) == "not reached (best val_acc 0.12)"
    assert why_missing("t_fsd", rows, ev, running=True).startswith("no ceiling yet")
    assert why_missing("lead", rows, ev, running=False) == "none: no t_grok and no FSD ceiling"
    assert why_missing("t_fsd", rows, ev, running=False, metrics_on=False) == "Fourier metrics off"
    never = _rows(0.1, train_acc=0.5)
    assert why_missing("t_fsd", never, run_events(never), running=False) == "never memorised"
    assert why_missing("t_fsd_online", never, run_events(never), running=False).startswith("never fired")
    grokked = _rows(0.99)
    assert why_missing("t_grok", grokked, run_events(grokked), running=False) == ""  # present: no reason
    # t_excluded comes from checkpoints (grokmon.offline): from rows alone it says so; the online one has reasons.
    assert why_missing("t_excluded", rows, ev, running=False) == NOT_FROM_CHECKPOINTS
    assert why_missing("t_excluded_online", never, run_events(never), running=False) == "never memorised"
    assert why_missing("t_excluded_online", rows, ev, running=True) == "not yet (no lasting rise)"


@pytest.mark.parametrize(("lo", "hi", "labels"), [
    (0, 1500, ["0", "500", "1k", "1.5k"]),
    (0, 25000, ["0", "5k", "10k", "15k", "20k", "25k"]),
    (0, 7, ["0", "2", "4", "6"]),
    (0, 3_000_000, ["0", "1M", "2M", "3M"]),
])
def test_step_ticks_are_round_integers_with_suffixes(lo: int, hi: int, labels: list[str]) -> None:
    ticks, text = step_ticks(lo, hi)
    assert text == labels and all(t == int(t) for t in ticks)


def test_format_steps() -> None:
    assert [format_steps(s) for s in (300, 1000, 1250, 2_500_000)] == ["300", "1k", "1.25k", "2.5M"]


def test_run_plot_names_its_lines_and_marks_in_the_title() -> None:
    rows = [{"step": s, "val_acc": min(1.0, s / 1000), "fsd": 0.5} for s in range(0, 1600, 100)]
    text = run_plot(rows, [(700, "w: weight_decay 2"), (1000, "t_grok")], width=90, height=14, color=False)
    first = text.splitlines()[0]
    assert "val_acc (line), FSD (dots)" in first and "w: weight_decay 2 at 700" in first and "t_grok at 1k" in first
    assert "237.5" not in text and "1.5k" in text
