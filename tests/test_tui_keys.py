"""Every key of the app, driven by Pilot against a FakeSource: the commands sent, the help screen, the d
modal with bad input, pause toggling, log scale, smoothing, disabled keys, and quitting cleanly."""

from __future__ import annotations

import pytest

from grokmon.events import Command
from grokmon.tui.accuracy_plot import AccuracyPlot
from grokmon.tui.app import GrokmonApp
from grokmon.tui.fsd_plot import FsdPlot
from grokmon.tui.help_screen import HelpScreen
from grokmon.tui.loss_plot import LossPlot
from grokmon.tui.spectrum_bars import SpectrumBars
from grokmon.tui.time_plot import TimePlot
from grokmon.tui.wd_modal import WeightDecayModal
from textual.widgets import Input, Static
from tui_fakes import FakeSource, metrics_row, record_notifications, screen_text


def running_app(src: FakeSource) -> GrokmonApp:
    return GrokmonApp(src, redraw_interval=60)


async def start(src: FakeSource, pilot: object, last: int = 1000) -> None:
    src.event("start", 0, device="cpu")
    for step in range(0, last, 100):
        src.row(**metrics_row(step, probe=step % 500 == 0))
    await pilot.pause()  # type: ignore[attr-defined]


async def test_w_and_W_scale_weight_decay_by_the_factor_and_only_the_event_changes_it() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await start(src, pilot)
        await pilot.press("w")
        assert src.sent == [Command("set_weight_decay", 2.0, source="key:w")]
        assert app.state.weight_decay == 1.0  # unchanged until the trainer says so
        app.redraw()
        assert "(-> 2 pending)" in screen_text(app)
        await pilot.press("w")  # scales the pending value, not the stale one
        assert src.sent[-1].value == pytest.approx(4.0)
        src.event("intervention", 1000, name="weight_decay", old=1.0, new=2.0, source="key:w")
        src.event("intervention", 1000, name="weight_decay", old=2.0, new=4.0, source="key:w")
        await pilot.pause()
        await pilot.press("W")
        assert src.sent[-1] == Command("set_weight_decay", 2.0, source="key:W")
        app.redraw()
        assert app.state.weight_decay == 4.0 and "wd 4" in screen_text(app)


async def test_wd_factor_comes_from_the_config() -> None:
    src = FakeSource(config={"run": {"wd_factor": 3.0}, "optim": {"weight_decay": 0.3}})
    app = running_app(src)
    async with app.run_test() as pilot:
        await pilot.press("W")
        assert src.sent[-1].value == pytest.approx(0.1)


async def test_d_opens_a_modal_that_rejects_bad_input_inline_and_sends_the_value() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await start(src, pilot)
        await pilot.press("d")
        assert isinstance(app.screen, WeightDecayModal)
        field = app.screen.query_one(Input)
        assert field.value == "1" and app.focused is field
        field.value = ""
        await pilot.press("a", "b", "c", "w", "enter")  # w is text here, not the key binding
        error = app.screen.query_one("#wd-error", Static)
        assert "not a number: 'abcw'" in str(error.render())
        assert isinstance(app.screen, WeightDecayModal) and src.sent == []
        field.value = "-1"
        await pilot.press("enter")
        assert "must be >= 0" in str(error.render())
        field.value = "inf"
        await pilot.press("enter")
        assert "finite" in str(error.render())
        field.value = "0.25"
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, WeightDecayModal)
        assert src.sent == [Command("set_weight_decay", 0.25, source="key:d")]


async def test_d_modal_escape_cancels() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await pilot.press("d", "escape")
        await pilot.pause()
        assert not isinstance(app.screen, WeightDecayModal) and src.sent == []


async def test_p_pauses_then_resumes_following_the_events() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await start(src, pilot)
        await pilot.press("p")
        assert src.sent == [Command("pause", source="key:p")]
        src.event("intervention", 1000, name="pause", source="key:p")
        await pilot.pause()
        app.redraw()
        assert app.state.paused and "PAUSED" in screen_text(app).splitlines()[0]
        assert "Resume" in screen_text(app).splitlines()[-1]  # the footer offers the other half
        await pilot.press("p")
        assert src.sent[-1] == Command("resume", source="key:p")
        src.event("intervention", 1000, name="resume", source="key:p")
        await pilot.pause()
        app.redraw()
        assert not app.state.paused and "PAUSED" not in screen_text(app)
        await pilot.press("p")
        assert src.sent[-1] == Command("pause", source="key:p")


async def test_c_asks_for_a_checkpoint() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await pilot.press("c")
        assert src.sent == [Command("checkpoint", source="key:c")]


async def test_interventions_are_disabled_after_the_run_finished_and_say_why() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        await start(src, pilot)
        src.event("finish", 1000, status="completed", reason="max_steps")
        await pilot.pause()
        for key in ("w", "W", "d", "p", "c"):
            await pilot.press(key)
        assert src.sent == [] and not isinstance(app.screen, WeightDecayModal)
        assert sum("has finished" in m for m, _ in seen) == 5
        assert app.check_action("wd_up", ()) is None  # greyed out in the footer, not hidden
        await pilot.press("y")  # view keys still work
        assert app.query_one(AccuracyPlot).log_y


async def test_y_toggles_log_scale_on_the_focused_plot_and_tab_moves_focus() -> None:
    src = FakeSource(spectra={"embed": [1.0, 2.0, 0.5], "unembed": [0.1, 0.2, 3.0]})
    app = running_app(src)
    async with app.run_test(size=(120, 40)) as pilot:
        await start(src, pilot, last=3000)
        acc, loss, fsd, bars = (app.query_one(c) for c in (AccuracyPlot, LossPlot, FsdPlot, SpectrumBars))
        assert app.focused is acc and not acc.log_y and loss.log_y
        await pilot.press("y")
        assert acc.log_y and loss.log_y
        await pilot.press("tab")
        assert app.focused is loss
        await pilot.press("y")
        assert not loss.log_y
        app.redraw()
        await pilot.pause()
        assert "loss [lin]" in screen_text(app) and "accuracy [log]" in screen_text(app)
        await pilot.press("tab", "y")
        assert app.focused is fsd and not fsd.log_y and "p lin" in str(fsd.border_title)
        await pilot.press("tab", "y")
        assert app.focused is bars and bars.log_y
        app.redraw()
        assert "1" in bars.render().plain  # log ticks labelled with values
        before = bars.render().plain
        await pilot.press("v")
        assert bars.component == "unembed"
        app.redraw()
        assert "spectrum: unembed" in screen_text(app)
        assert bars.render().plain != before  # the bars are the unembed spectrum's now


async def test_y_without_a_focused_plot_says_so() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        app.set_focus(None)
        await pilot.press("y")
        assert any("focus a plot" in m for m, _ in seen)


async def test_s_cycles_smoothing_and_keeps_the_raw_line() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test(size=(120, 40)) as pilot:
        await start(src, pilot, last=3000)
        app.redraw()
        plots = list(app.query(TimePlot))
        drawn_off = app.query_one(AccuracyPlot).plt._active.monitor.y  # type: ignore[attr-defined]
        seen = []
        for _ in range(3):
            await pilot.press("s")
            seen.append({p.smoothing for p in plots})
            if seen[-1] == {0.6}:
                app.redraw()
                assert "accuracy [lin, EMA 0.6]" in screen_text(app)
                drawn_on = app.query_one(AccuracyPlot).plt._active.monitor.y  # type: ignore[attr-defined]
                assert len(drawn_on) == 2 * len(drawn_off)  # raw train, val and their EMAs
        assert seen == [{0.6}, {0.9}, {None}]


async def test_question_mark_opens_help_listing_every_key() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = dict(app.screen.keys)
        for key in ("w", "W", "d", "p", "c", "y", "s", "?", "q", "tab / shift+tab"):
            assert key in keys
        assert "multiply weight decay by 2" in keys["w"] and "checkpoint" in keys["q"]
        await pilot.press("w")  # the help screen swallows app keys
        assert src.sent == []
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_q_stops_the_source_shows_stopping_waits_and_exits() -> None:
    src = FakeSource()
    src.hold = True
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        await start(src, pilot)
        await pilot.press("q")
        await pilot.pause()
        assert src.stopped == 1 and src.waited == 1 and app.is_running
        assert ("stopping: writing checkpoint and summary", "information") in seen
        assert "STOPPING" in screen_text(app).splitlines()[0]
        await pilot.press("w")
        assert src.sent == []  # no interventions while stopping
        await pilot.press("q")
        assert src.stopped == 1  # a second press does not stop twice
        src.event("finish", 1000, status="stopped", reason="key:q")  # the trainer's last words still arrive
        await pilot.pause()
        assert app.state.finished == "stopped"
        src.release.set()
        await pilot.pause()
        await pilot.pause()
        assert not app.is_running


@pytest.mark.parametrize("key", ["ctrl+c", "ctrl+q"])
async def test_ctrl_c_and_ctrl_q_quit_the_same_way(key: str) -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await pilot.press(key)
        await pilot.pause()
        assert src.stopped == 1 and src.waited == 1
        await pilot.pause()
        assert not app.is_running


async def test_quitting_a_watched_run_does_not_claim_to_stop_it() -> None:
    src = FakeSource(live=False)
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        await pilot.press("q")
        await pilot.pause()
        assert src.stopped == 1 and src.waited == 1
        assert not any("stopping" in m for m, _ in seen)
