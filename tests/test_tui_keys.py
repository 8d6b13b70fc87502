"""Every key of the app, driven by Pilot against a FakeSource: the commands sent, the help screen, the d
modal with bad input, pause toggling, log scale, smoothing, disabled keys, quitting cleanly, and a registry
row added in a test that gets its key, help, footer label, marker and log line with no TUI change."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from grokmon import interventions
from grokmon.events import Command
from grokmon.interventions import Intervention, Key, ValueRange
from grokmon.tui.accuracy_plot import AccuracyPlot
from grokmon.tui.app import VIEW_KEYS, GrokmonApp, app_bindings
from grokmon.tui.event_log import EventLog
from grokmon.tui.fsd_plot import FsdPlot
from grokmon.tui.help_screen import HelpScreen
from grokmon.tui.loss_plot import LossPlot
from grokmon.tui.spectrum_bars import SpectrumBars
from grokmon.tui.status_bar import StatusBar
from grokmon.tui.time_plot import TimePlot
from grokmon.tui.value_modal import ValueModal
from tui_fakes import FakeSource, metrics_row, record_notifications, screen_text, wait_for

pytestmark = pytest.mark.unit


def running_app(src: FakeSource) -> GrokmonApp:
    return GrokmonApp(src, redraw_interval=60)


async def start(src: FakeSource, pilot: object, last: int = 1000) -> None:
    src.event("start", 0, device="cpu")
    for step in range(0, last, 100):
        src.row(**metrics_row(step, probe=step % 500 == 0))
    app = src.app
    await wait_for(pilot, lambda: app.state.step == last - 100, "the scripted rows")
    # The footer recomposes when the bindings' states change (a row makes hyperparameters known): let it.
    await wait_for(pilot, lambda: footer_line(app).strip() != "", "the footer")


def status_lines(app: GrokmonApp) -> list[str]:
    """The status bar's lines as shown (its groups wrap at the terminal's width)."""
    app.redraw()
    return app.query_one(StatusBar).text.splitlines()


def footer_line(app: GrokmonApp) -> str:
    return screen_text(app).splitlines()[-1]


def registry_keys() -> list[str]:
    """The first key of every registry key binding (`p` once: pause and resume share it)."""
    return list(dict.fromkeys(k.key.split(",")[0] for row in interventions.REGISTRY for k in row.keys))


async def test_w_and_W_scale_weight_decay_by_the_factor_and_only_the_event_changes_it() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await start(src, pilot)
        await pilot.press("w")
        assert src.sent == [Command("set_weight_decay", 2.0, source="key:w")]
        assert app.state.value("weight_decay") == 1.0  # unchanged until the trainer says so
        assert "wd 1 (-> 2 pending)" in "\n".join(status_lines(app))
        await pilot.press("w")  # scales the pending value, not the stale one
        assert src.sent[-1].value == pytest.approx(4.0)
        src.event("intervention", 1000, name="weight_decay", old=1.0, new=2.0, source="key:w")
        src.event("intervention", 1000, name="weight_decay", old=2.0, new=4.0, source="key:w")
        await wait_for(pilot, lambda: app.state.pending("weight_decay") is None, "the acknowledgements")
        await pilot.press("W")
        assert src.sent[-1] == Command("set_weight_decay", 2.0, source="key:W")
        assert app.state.value("weight_decay") == 4.0 and "wd 4" in "\n".join(status_lines(app))


async def test_wd_factor_comes_from_the_config() -> None:
    src = FakeSource(config={"run": {"wd_factor": 3.0}, "optim": {"weight_decay": 0.3}})
    app = running_app(src)
    async with app.run_test() as pilot:
        await pilot.press("W")
        assert src.sent[-1].value == pytest.approx(0.1)


async def test_d_opens_a_modal_that_rejects_bad_input_inline_with_the_rows_range_and_sends_the_value() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await start(src, pilot)
        await pilot.press("d")
        assert isinstance(app.screen, ValueModal) and app.screen.row.kind == "set_weight_decay"
        field = app.screen.query_one(Input)
        assert field.value == "1" and app.focused is field
        field.value = ""
        await pilot.press("a", "b", "c", "w", "enter")  # w is text here, not the key binding
        error = app.screen.query_one("#value-error", Static)
        assert "not a number: 'abcw'" in str(error.render())
        assert isinstance(app.screen, ValueModal) and src.sent == []
        for bad in ("-1", "inf", "20000"):
            field.value = bad
            await pilot.press("enter")
            assert "weight_decay needs a finite number in [0, 10000]" in str(error.render()), bad
        field.value = "0.25"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ValueModal), "the modal to close")
        assert src.sent == [Command("set_weight_decay", 0.25, source="key:d")]


async def test_d_modal_escape_cancels() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await pilot.press("d", "escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ValueModal), "the modal to close")
        assert src.sent == []


async def test_l_and_L_scale_the_learning_rate_by_the_factor() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await start(src, pilot)
        await pilot.press("l")
        assert src.sent == [Command("set_lr", 2e-3, source="key:l")]
        assert app.state.value("lr") == 1e-3 and "lr 1e-3 (-> 2e-3 pending)" in "\n".join(status_lines(app))
        await pilot.press("L")  # divides the pending value, not the stale one
        assert src.sent[-1] == Command("set_lr", 1e-3, source="key:L")
        src.event("intervention", 1000, name="lr", old=1e-3, new=2e-3, source="key:l")
        src.event("intervention", 1000, name="lr", old=2e-3, new=1e-3, source="key:L")
        src.row(**metrics_row(1100, lr=1e-3))
        await wait_for(pilot, lambda: app.state.pending("lr") is None, "the acknowledgements")
        await pilot.press("L")
        assert src.sent[-1] == Command("set_lr", 5e-4, source="key:L")
        log = app.query_one(EventLog).lines_text
        assert any("lr 1e-3 -> 2e-3 (key:l)" in line for line in log)
        assert any("sent set_lr 5e-4 (key:L)" in line for line in log)


async def test_a_scaled_value_past_the_rows_range_is_refused_with_the_range() -> None:
    src = FakeSource(config={"optim": {"weight_decay": 8000.0, "lr": 8.0}, "run": {"wd_factor": 2.0}})
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        await pilot.press("w", "l")
        assert src.sent == []
        assert [m for m, _ in seen] == ["set_weight_decay needs a finite number in [0, 10000], got 16000",
                                        "set_lr needs a finite number in (0, 10], got 16"]


async def test_p_pauses_then_resumes_following_the_events() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await start(src, pilot)
        await pilot.press("p")
        assert src.sent == [Command("pause", source="key:p")]
        assert "p Resume" in footer_line(app) and "Pause" not in footer_line(app)  # the request is pending
        src.event("intervention", 1000, name="pause", source="key:p")
        await wait_for(pilot, lambda: app.state.paused, "the pause event")
        assert "PAUSED" in status_lines(app)[0]
        assert "p Resume" in footer_line(app) and "Pause" not in footer_line(app)  # the other half, never both
        await pilot.press("p")
        assert src.sent[-1] == Command("resume", source="key:p")
        src.event("intervention", 1000, name="resume", source="key:p")
        await wait_for(pilot, lambda: not app.state.paused, "the resume event")
        assert "PAUSED" not in status_lines(app)[0]
        assert "p Pause" in footer_line(app) and "Resume" not in footer_line(app)
        await pilot.press("p")
        assert src.sent[-1] == Command("pause", source="key:p")


async def test_c_asks_for_a_checkpoint() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await pilot.press("c")
        assert src.sent == [Command("checkpoint", source="key:c")]


async def test_every_registry_key_is_disabled_after_the_run_finished_and_says_why() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        await start(src, pilot)
        src.event("finish", 1000, status="completed", reason="max_steps")
        await wait_for(pilot, lambda: app.state.status == "finished", "the finish event")
        keys = registry_keys()
        assert {"w", "W", "d", "l", "L", "p", "c"} <= set(keys)
        for key in keys:
            await pilot.press(key)
        assert src.sent == [] and not isinstance(app.screen, ValueModal)
        assert sum("has finished" in m for m, _ in seen) == len(keys)
        assert app.check_action("intervene", ("set_lr", 1)) is None  # greyed out in the footer, not hidden
        await pilot.press("y")  # view keys still work
        assert app.query_one(AccuracyPlot).log_y


def test_no_view_key_is_also_a_registry_key() -> None:
    view = {k for binding, _ in VIEW_KEYS for k in binding.key.split(",")}
    assert view.isdisjoint(k for row in interventions.REGISTRY for key in row.keys for k in key.key.split(","))


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
        assert str(loss.border_title).endswith("[lin]") and str(acc.border_title).endswith("[log]")
        await pilot.press("tab", "y")
        assert app.focused is fsd and not fsd.log_y and str(fsd.border_title).endswith("[lin]")
        await pilot.press("tab", "y")
        assert app.focused is bars and bars.log_y
        app.redraw()
        assert "1" in bars.render().plain  # log ticks labelled with values
        before = bars.render().plain
        await pilot.press("v")
        assert bars.component == "unembed"
        app.redraw()
        assert "Fourier frequencies of the unembedding (W_U)" in screen_text(app)
        assert bars.render().plain != before  # the bars are the unembed spectrum's now


async def test_y_without_a_focused_plot_says_so() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        app.set_focus(None)
        await pilot.press("y")
        assert any("focus a plot" in m for m, _ in seen)


async def test_s_cycles_smoothing_and_keeps_the_raw_line(monkeypatch: pytest.MonkeyPatch) -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test(size=(120, 40)) as pilot:
        await start(src, pilot, last=3000)
        plots = list(app.query(TimePlot))
        accuracy = app.query_one(AccuracyPlot)
        lines: list[str] = []  # the colours of the lines the accuracy plot draws, per redraw
        draw = accuracy.plt.plot
        monkeypatch.setattr(accuracy.plt, "plot", lambda *a, **kw: (lines.append(kw.get("color")), draw(*a, **kw)))
        app.redraw()
        assert lines == ["cyan", "orange"]  # train and val
        seen = []
        for _ in range(3):
            lines.clear()
            await pilot.press("s")  # redraws at once
            seen.append({p.smoothing for p in plots})
            if seen[-1] == {0.6}:
                assert str(accuracy.border_title).endswith("[lin, EMA 0.6]")
                assert lines == ["gray", "cyan", "gray", "orange"]  # each raw line stays, faint, under its EMA
        assert seen == [{0.6}, {0.9}, {None}]


async def test_question_mark_opens_help_listing_every_key() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = dict(app.screen.keys)
        for key in ("w", "W", "d", "l", "L", "p", "c", "y", "s", "m", "?", "q", "tab, shift+tab"):
            assert key in keys
        assert "multiply weight decay by 2" in keys["w"] and "checkpoint" in keys["q"]
        assert keys["l"] == "multiply the learning rate by 2" and keys["L"] == "divide the learning rate by 2"
        assert "multiply the learning rate by 2" in screen_text(app)
        await pilot.press("w")  # the help screen swallows app keys
        assert src.sent == []
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_the_footer_fits_80_columns_with_the_main_keys() -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(src, pilot)
        footer = footer_line(app)
        for piece in ("w W wd", "l L lr", "p Pause", "? Help", "q Quit"):
            assert piece in footer
        assert " d " not in footer  # the exact-value key is in the help only


DROPOUT = Intervention(
    "set_dropout", "attn_dropout", "attention dropout", lambda run, value: (None, value),
    ValueRange(0.0, 0.5), marker="Z",
    keys=(Key("o", "o", +1, "multiply attention dropout by {factor}"), Key("O,shift+o", "O", -1, "divide it"),
          Key("ctrl+o", "^o", 0, "type an exact attention dropout")),
)


@pytest.fixture
def dropout_registry(monkeypatch: pytest.MonkeyPatch) -> type[GrokmonApp]:
    """The registry with one more row, and an app class built after it (Textual binds keys per class)."""
    registry = (*interventions.REGISTRY, DROPOUT)
    monkeypatch.setattr(interventions, "REGISTRY", registry)
    monkeypatch.setattr(interventions, "BY_KIND", {row.kind: row for row in registry})
    monkeypatch.setattr(interventions, "BY_NAME", {row.name: row for row in registry})
    monkeypatch.setattr(interventions, "KINDS", tuple(row.kind for row in registry))
    monkeypatch.setattr(interventions, "HYPERPARAMETERS", tuple(row.name for row in registry if row.hyperparameter))

    class PatchedApp(GrokmonApp):
        BINDINGS = app_bindings()

    return PatchedApp


async def test_a_registry_row_added_in_a_test_gets_keys_help_footer_marker_and_log_without_tui_changes(
        dropout_registry: type[GrokmonApp]) -> None:
    src = FakeSource()
    app = dropout_registry(src, redraw_interval=60)
    async with app.run_test(size=(120, 40)) as pilot:
        seen = record_notifications(app)
        await pilot.press("o")
        assert src.sent == [] and "attn_dropout is not known yet (no config or metrics row)" in [m for m, _ in seen]
        src.event("start", 0, device="cpu")
        for step in range(0, 1000, 100):
            src.row(**metrics_row(step, attn_dropout=0.1))
        await wait_for(pilot, lambda: app.state.value("attn_dropout") == 0.1, "the rows")
        await pilot.press("o", "O")
        assert src.sent == [Command("set_dropout", 0.2, source="key:o"),
                            Command("set_dropout", 0.1, source="key:O")]
        assert "ad 0.1 (-> 0.1 pending)" in "\n".join(status_lines(app))
        assert "o O ad" in footer_line(app)
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, ValueModal) and app.screen.row is DROPOUT
        app.screen.query_one(Input).value = "0.9"
        await pilot.press("enter")
        error = app.screen.query_one("#value-error", Static)
        assert "attn_dropout needs a finite number in [0, 0.5]" in str(error.render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ValueModal), "the modal to close")
        src.event("intervention", 900, name="attn_dropout", old=0.1, new=0.2, source="key:o")
        await wait_for(pilot, lambda: app.state.value("attn_dropout") == 0.2, "the intervention")
        assert [(m.label, m.tag) for m in app.state.markers()] == [("attn_dropout 0.2", "Z")]
        app.redraw()
        assert "Z" in app.query_one(AccuracyPlot).render().plain  # type: ignore[union-attr]
        assert any("attn_dropout 0.1 -> 0.2 (key:o)" in line for line in app.query_one(EventLog).lines_text)
        await pilot.press("question_mark")
        keys = dict(app.screen.keys)  # type: ignore[attr-defined]
        assert keys["o"] == "multiply attention dropout by 2" and keys["^o"] == "type an exact attention dropout"


async def test_q_stops_the_source_shows_stopping_waits_and_exits() -> None:
    src = FakeSource()
    src.hold = True
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        await start(src, pilot)
        await pilot.press("q")
        await wait_for(pilot, lambda: src.waited == 1, "the quit worker")
        assert src.stopped == 1 and app.is_running
        assert ("stopping: writing checkpoint and summary", "information") in seen
        assert "STOPPING" in status_lines(app)[0]
        await pilot.press("w")
        assert src.sent == []  # no interventions while stopping
        await pilot.press("q")
        assert src.stopped == 1  # a second press does not stop twice
        src.event("finish", 1000, status="stopped", reason="key:q")  # the trainer's last words still arrive
        await wait_for(pilot, lambda: app.state.finished == "stopped", "the finish event")
        src.release.set()
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")


@pytest.mark.parametrize("key", ["ctrl+c", "ctrl+q"])
async def test_ctrl_c_and_ctrl_q_quit_the_same_way(key: str) -> None:
    src = FakeSource()
    app = running_app(src)
    async with app.run_test() as pilot:
        await pilot.press(key)
        await wait_for(pilot, lambda: src.waited == 1, "the quit worker")
        assert src.stopped == 1
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")


async def test_quitting_a_watched_run_does_not_claim_to_stop_it() -> None:
    src = FakeSource(live=False)
    app = running_app(src)
    async with app.run_test() as pilot:
        seen = record_notifications(app)
        await pilot.press("q")
        await wait_for(pilot, lambda: src.waited == 1, "the quit worker")
        assert src.stopped == 1
        assert not any("stopping" in m for m, _ in seen)
