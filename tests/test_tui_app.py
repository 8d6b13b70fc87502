"""The app driven by Pilot with a scripted FakeSource: panels, redraw cadence, sizes, failure, resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from grokmon.tui.accuracy_plot import AccuracyPlot
from grokmon.tui.app import GrokmonApp
from grokmon.tui.event_log import EventLog
from grokmon.tui.fsd_plot import FsdPlot
from grokmon.tui.loss_plot import LossPlot
from grokmon.tui.spectrum_bars import SpectrumBars
from grokmon.tui.status_bar import StatusBar
from grokmon.tui.time_plot import TimePlot
from tui_fakes import FakeSource, metrics_row, record_notifications, screen_text, wait_for

pytestmark = pytest.mark.unit

SPECTRA = {"embed": [0.01] * 13 + [5.0] + [0.01] * 42, "unembed": [0.02] * 56}


def script_run(src: FakeSource, last: int = 5000) -> None:
    """A run up to `last`: start, rows every 100 steps (probed every 500), a w press, the FSD detector."""
    src.event("start", 0, device="cpu")
    for step in range(0, last, 100):
        if step == 1600:
            src.event("intervention", 1500, name="weight_decay", old=1.0, new=2.0, source="key:w")
        if step == 2700:
            src.event("alert", 2600, kind="fsd_ceiling", message="FSD reached its ceiling")
        src.row(**metrics_row(step, wd=2.0 if step > 1500 else 1.0, probe=step % 500 == 0))


def plot_text(widget: TimePlot | SpectrumBars) -> str:
    return widget.render().plain  # type: ignore[union-attr]


async def test_source_is_started_once_and_panels_draw_scripted_rows() -> None:
    src = FakeSource(spectra=SPECTRA)
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        assert src.started == 1 and src.app is app
        script_run(src)
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        status = app.query_one(StatusBar).text.splitlines()
        assert "step 4900/10000" in status[0] and "100 steps/s" in status[0] and "watching" not in status[0]
        assert "run dir runs/fake" in status[0]
        assert "wd 2" in status[1] and "FSD detector fired at 2600 (online)" in status[2]
        assert "grokked at 3100 (t_grok)" in status[2]
        acc = plot_text(app.query_one(AccuracyPlot))
        title = str(app.query_one(AccuracyPlot).border_title)
        assert "1┤" in acc and "0┤" in acc and "train" in title and "val" in title and "4k" in acc
        assert "D" in acc and "G" in acc and "w" in acc  # markers: the FSD detector, t_grok, the intervention
        loss = plot_text(app.query_one(LossPlot))
        assert "0.01" in loss or "1e-3" in loss  # value-labelled log10 ticks
        fsd = plot_text(app.query_one(FsdPlot))
        assert "FSD" in fsd and "o" in fsd and "1e-3" in fsd  # sync markers and the log p axis
        assert "alpha 0.05" in fsd
        bars = app.query_one(SpectrumBars)
        assert bars.component == "embed" and "0.5┤" in plot_text(bars) and "50" in plot_text(bars)
        table = screen_text(app)
        assert "W_E" in table and "W_L" in table and "14 30.0" in table and "14 40.0" in table
        log = app.query_one(EventLog).lines_text
        assert any("weight_decay 1 -> 2 (key:w)" in line for line in log)
        assert any("FSD detector fired (online rule)" in line for line in log)


async def test_the_status_bar_shows_the_lr_the_rows_carry_after_set_lr() -> None:
    src = FakeSource()
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        src.event("start", 0, device="cpu")
        src.row(**metrics_row(0, lr=1e-4))  # the warm-up's first step
        await wait_for(pilot, lambda: app.state.step == 0, "the first row")
        app.redraw()
        assert "lr 1e-4" in app.query_one(StatusBar).text
        src.event("intervention", 100, name="lr", old=1e-3, new=2e-3, source="key:l")
        src.row(**metrics_row(100, lr=1e-3))  # evaluated before the change
        src.row(**metrics_row(200, lr=2e-3))
        await wait_for(pilot, lambda: app.state.step == 200, "the rows")
        app.redraw()
        assert "lr 2e-3" in app.query_one(StatusBar).text
        assert any("lr 1e-3 -> 2e-3 (key:l)" in line for line in app.query_one(EventLog).lines_text)


async def test_plots_redraw_on_the_timer_not_per_message_and_only_on_change() -> None:
    src = FakeSource()
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        plot = app.query_one(AccuracyPlot)
        before = plot.replots
        for step in range(0, 5000, 100):
            src.row(**metrics_row(step))
        await pilot.pause()
        assert plot.replots == before  # 50 rows, no redraw until the timer fires
        app.redraw()
        app.redraw()
        assert plot.replots == before + 1  # nothing changed between the two redraws


async def test_the_redraw_timer_picks_up_rows_by_itself() -> None:
    src = FakeSource()
    app = GrokmonApp(src, redraw_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        src.row(**metrics_row(0))
        src.row(**metrics_row(100))
        await wait_for(pilot, lambda: "step 100/10000" in screen_text(app), "a timer redraw", delay=0.05)


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (60, 16), (40, 10)])
async def test_layout_renders_at_every_size(size: tuple[int, int]) -> None:
    src = FakeSource(spectra=SPECTRA)
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=size) as pilot:
        script_run(src)
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        text = screen_text(app)
        assert "step 4900" in text
        if size[0] >= 80:
            assert "accuracy" in text and "loss" in text and "Quit" in text
            assert app.query_one(AccuracyPlot).size.height >= 5
        await pilot.resize_terminal(120 if size[0] < 120 else 80, 40 if size[1] < 40 else 24)
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        assert "step 4900" in screen_text(app)


async def test_a_resumed_run_replaces_the_rows_after_its_step() -> None:
    src = FakeSource()
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        script_run(src)
        await pilot.pause()
        app.redraw()
        assert app.state.t_grok is not None
        src.event("resume", 2000)
        src.row(**metrics_row(2000, grok_at=99999))
        src.row(**metrics_row(2100, grok_at=99999))
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        assert app.state.steps[-1] == 2100 and len(app.state) == 22
        assert app.state.t_grok is None
        text = screen_text(app)
        assert "step 2100/10000" in text and "grokked at" not in text and "t_grok: not yet" in text
        assert "2k" in plot_text(app.query_one(AccuracyPlot)) and "4k" not in plot_text(app.query_one(AccuracyPlot))
        assert any("resumed from the checkpoint at step 2000" in line for line in app.query_one(EventLog).lines_text)


async def test_a_failure_is_notified_logged_and_shown_and_the_app_stays_open() -> None:
    src = FakeSource()
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = record_notifications(app)
        script_run(src, last=1000)
        src.event("failed", 950, error="RuntimeError: CUDA out of memory [b=3]")
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        assert ("training failed: RuntimeError: CUDA out of memory [b=3]", "error") in seen
        assert any("FAILED: RuntimeError: CUDA out of memory [b=3]" in line for line in app.query_one(EventLog).lines_text)
        text = screen_text(app)
        assert "FAILED" in text.splitlines()[0] and "error: RuntimeError: CUDA out of memory [b=3]" in text
        await pilot.press("w")
        await wait_for(pilot, lambda: any("failed" in message and severity == "warning" for message, severity in seen),
                       "the key's refusal")
        assert app.is_running and src.sent == []


async def test_event_log_lists_alerts_checkpoints_and_finish() -> None:
    src = FakeSource()
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        seen = record_notifications(app)
        src.event("alert", 300, kind="nonfinite_loss", message="train loss is nan")
        src.event("alert", 310, kind="command_rejected", message="control.jsonl line 3: bad kind")
        src.event("intervention", 400, name="checkpoint", source="key:c")
        src.event("checkpoint", 400, path="checkpoints/step_00000400.pt")
        src.event("finish", 500, status="completed", reason="max_steps")
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        log = "\n".join(app.query_one(EventLog).lines_text)
        for piece in ("non-finite loss: train loss is nan", "command rejected", "checkpoint requested (key:c)",
                      "checkpoint saved: checkpoints/step_00000400.pt", "finished: completed (max_steps)"):
            assert piece in log
        assert ("train loss is nan", "error") in seen
        assert "FINISHED" in screen_text(app).splitlines()[0]


async def test_watch_mode_says_what_it_watches(tmp_path: Path) -> None:
    src = FakeSource(live=False, run_dir=tmp_path / "run1")
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        src.row(**metrics_row(100))
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        status = app.query_one(StatusBar).text
        assert "watching" in status and f"run dir {tmp_path / 'run1'}" in status.replace("\n", " ")


async def test_no_color_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    src = FakeSource(spectra=SPECTRA)
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(80, 24)) as pilot:
        script_run(src, last=2000)
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        assert app.no_color and app.query_one(AccuracyPlot).no_color
        assert "step 1900" in screen_text(app)


async def test_no_config_and_no_spectra_still_draws() -> None:
    src = FakeSource(config=None)
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = record_notifications(app)
        app.redraw()
        await pilot.press("w")
        assert src.sent == [] and any("not known yet" in m for m, _ in seen)
        src.configure({"train": {"max_steps": 700}, "optim": {"weight_decay": 0.5}, "run": {"wd_factor": 4.0}})
        src.row(**metrics_row(100, wd=0.5))
        await pilot.pause()
        app.redraw()
        await pilot.press("w")
        assert src.sent[-1].value == pytest.approx(2.0)
        assert "step 100/700" in screen_text(app)


async def test_a_replayed_history_does_not_pop_up_old_alerts_but_a_failure_always_does() -> None:
    src = FakeSource(live=False)
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        seen = record_notifications(app)
        src.event("alert", 300, kind="fsd_ceiling", message="old news", time=1.0)
        src.event("finish", 400, status="completed", time=1.0)
        await pilot.pause()
        assert seen == [] and len(app.query_one(EventLog).lines_text) == 2
        src.event("failed", 400, error="old failure", time=1.0)
        await pilot.pause()
        assert seen == [("training failed: old failure", "error")]


async def test_fsd_panel_says_when_fourier_metrics_are_off() -> None:
    src = FakeSource(config={"metrics": {"metrics_every": 0}})
    app = GrokmonApp(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        src.row(**metrics_row(100))
        await pilot.pause()
        app.redraw()
        await pilot.pause()
        assert "Fourier metrics off" in str(app.query_one(FsdPlot).border_title)
        assert "no Fourier probe yet" in app.query_one(SpectrumBars).render().plain
