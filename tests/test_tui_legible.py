"""What a first-time user reads off the screen, at 120x40 and 80x24, with and without NO_COLOR: the status
bar's labelled numbers, the events in one vocabulary (online detector vs offline ceiling), the FSD panel
(alpha line, FSD and p(FSD) apart without colour, the null, sync marks from memorisation), the frequency
panel, the progress view (m), the help, a resumed run's whole history, integer step ticks, legends off the
data. Scripted with FakeSource (and one real LiveSource on a tiny run), public APIs only."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import ContentSwitcher, Static

from grokmon import interventions
from grokmon.config import Config
from grokmon.events import Command
from grokmon.metrics.runs import run_events, why_missing
from grokmon.rundir.layout import CHECKPOINTS
from grokmon.session import RunSession
from grokmon.tui.accuracy_plot import AccuracyPlot
from grokmon.tui.app import GrokmonApp
from grokmon.tui.event_log import EventLog
from grokmon.tui.freq_panel import FreqPanel
from grokmon.tui.fsd_plot import FsdPlot
from grokmon.tui.help_screen import HelpScreen
from grokmon.tui.loss_plot import LossPlot
from grokmon.tui.progress_plot import ProgressPlot
from grokmon.tui.series import format_value
from grokmon.tui.source import LiveSource
from grokmon.tui.status_bar import StatusBar
from grokmon.tui.time_plot import TimePlot
from tui_fakes import FakeSource, metrics_row, record_notifications, screen_text, wait_for

pytestmark = pytest.mark.unit

SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]
COLOUR = [pytest.param(False, id="colour"), pytest.param(True, id="NO_COLOR")]
SPECTRA = {"embed": [0.01] * 13 + [5.0] + [0.01] * 42, "unembed": [0.02] * 56}
BRAILLE = re.compile("[\u2801-\u28ff]")


def make_app(monkeypatch: pytest.MonkeyPatch, no_color: bool = False, **source: Any) -> tuple[GrokmonApp, FakeSource]:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    src = FakeSource(spectra=SPECTRA, **source)
    return GrokmonApp(src, redraw_interval=60), src


def script(src: FakeSource, first: int, last: int, *, alert_at: int | None = None, probe_every: int = 200,
           **row: Any) -> list[dict[str, Any]]:
    """Rows every 100 steps in [first, last), probed every `probe_every`; the detector's alert when asked."""
    if first == 0:
        src.event("start", 0, device="cpu")
    rows = []
    for step in range(first, last, 100):
        if alert_at is not None and step == alert_at + 100:
            src.event("alert", alert_at, kind="fsd_ceiling", message="FSD reached its ceiling")
        rows.append(metrics_row(step, probe=step % probe_every == 0, **row))
        src.row(**rows[-1])
    return rows


async def settle(pilot: Any, app: GrokmonApp, step: int) -> None:
    await wait_for(pilot, lambda: app.state.step == step, f"step {step}")
    app.redraw()
    await pilot.pause()


def status_of(app: GrokmonApp) -> str:
    return app.query_one(StatusBar).text


def title_of(widget: Any) -> str:
    """A border title as shown (it is kept as markup)."""
    return Content.from_markup(widget.border_title or "").plain


def plot_rows(plot: Any) -> list[str]:
    """The rendered plot's rows without its caption (what is drawn over the data area and the axes)."""
    lines = plot.render().plain.split("\n")
    return lines[: len(lines) - plot.caption_rows]


def caption_words(plot: Any) -> str:
    """The rendered caption as one line of words (it wraps at spaces)."""
    lines = plot.render().plain.split("\n")
    return " ".join(line.strip() for line in lines[len(plot_rows(plot)):])


# -- 1. the status bar ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("no_color", COLOUR)
async def test_the_status_bar_shows_the_latest_values_as_labelled_numbers(
        size: tuple[int, int], no_color: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch, no_color)
    async with app.run_test(size=size) as pilot:
        assert app.no_color == no_color
        script(src, 0, 100)
        await settle(pilot, app, 0)
        assert "ETA -" in status_of(app) and "- steps/s" in status_of(app)  # no speed yet, so no ETA
        rows = script(src, 100, 2500)
        await settle(pilot, app, 2400)
        last = rows[-1]
        probe = [r for r in rows if r["fsd"] is not None][-1]  # the Fourier keys come every 200 steps
        screen, status = screen_text(app), status_of(app)
        expected = [
            "step 2400/10000", "100 steps/s", "elapsed 0:24", "ETA 1:16", "phase circuit formation",
            "run dir runs/fake", f"train acc {last['train_acc']:.3f} loss {format_value(last['train_loss'])}",
            f"val acc {last['val_acc']:.3f} loss {format_value(last['val_loss'])}",
            f"FSD {probe['fsd']:.2f} p(FSD) {format_value(probe['fsd_p'])}  synchronised", "wd 1", "lr 1e-3",
        ]
        for item in expected:
            assert item in screen, item  # whole (a label never apart from its number) and on screen
        order = [status.replace("\n", " ").index(item) for item in expected]
        assert order == sorted(order)  # a fixed order
        lines = status.split("\n")
        assert all(len(line) <= size[0] - 2 for line in lines)
        values = status.split("\nt_grok")[0].split("\n")  # the numbers, before the events
        assert len(values) == (2 if size[0] >= 120 else 3), values
        assert len(lines) <= (4 if size[0] >= 120 else 6), lines
        assert not re.search(r"(?<![\w(])p [\d.-]", status)  # p is the modulus too: always p(FSD)


@pytest.mark.parametrize("size", SIZES)
async def test_a_watched_run_shows_its_directory_to_follow_it_elsewhere(size: tuple[int, int], tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch, live=False, run_dir=tmp_path / "run1")
    async with app.run_test(size=size) as pilot:
        script(src, 0, 300)
        await settle(pilot, app, 200)
        status = status_of(app)
        assert "watching" in status and f"run dir {tmp_path / 'run1'}" in status.replace("\n", "")


# -- 2. one vocabulary for the events ------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_online_detector_and_the_offline_ceiling_are_named_apart(
        size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch)
    async with app.run_test(size=size) as pilot:
        rows = script(src, 0, 1000)  # train_acc < 0.99: memorising
        await settle(pilot, app, 900)
        status = status_of(app).replace("\n", " ")
        events = run_events(rows)
        why = {k: why_missing(k, rows, events, running=True) for k in ("t_grok", "t_fsd", "t_fsd_online")}
        assert f"t_grok: {why['t_grok']}" in status and "not yet (best val_acc" in why["t_grok"]
        assert f"FSD detector (online): {why['t_fsd_online']}" in status
        assert f"t_fsd (offline): {why['t_fsd']}" in status

        rows += script(src, 1000, 2000, alert_at=1500)  # memorised; the engine's detector fires at 1500
        await settle(pilot, app, 1900)
        status = status_of(app).replace("\n", " ")
        events = run_events(rows)
        assert "FSD detector fired at 1500 (online)" in status and "t_fsd 1500" not in status
        assert events["t_fsd"] is None and events["t_grok"] is None
        assert f"t_fsd (offline): {why_missing('t_fsd', rows, events, running=True)}" in status
        assert "provisional until grokking" in status  # the offline ceiling waits for t_grok: it says so

        rows += script(src, 2000, 5000)
        await settle(pilot, app, 4900)
        status = status_of(app).replace("\n", " ")
        events = run_events(rows)
        assert f"grokked at {events['t_grok']} (t_grok)" in status
        assert f"t_fsd {events['t_fsd']} (offline ceiling)" in status and f"lead {events['lead']}" in status
        tags = {m.tag: m.step for m in app.state.markers()}
        assert tags == {"D": 1500, "F": events["t_fsd"], "G": events["t_grok"]}
        acc_rows = "\n".join(plot_rows(app.query_one(AccuracyPlot)))
        assert all(tag in acc_rows for tag in "DFG")


async def test_a_run_that_ended_without_grokking_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        rows = script(src, 0, 2000, grok_at=10 ** 6)
        src.event("finish", 1900, status="completed", reason="max_steps")
        await wait_for(pilot, lambda: app.state.ended, "the finish")
        app.redraw()
        status = status_of(app).replace("\n", " ")
        expected = why_missing("t_grok", rows, run_events(rows), running=False)
        assert expected.startswith("did not grok") and f"t_grok: {expected}" in status


# -- 3. the FSD panel ----------------------------------------------------------------------------


def _right_ticks(rows: list[str]) -> list[tuple[int, float]]:
    """(row, value) of the right axis' labels: '├0.01' or '┤0.01' at a row's end."""
    out = []
    for i, row in enumerate(rows):
        m = re.search(r"[├┤]([0-9.e-]+)\s*$", row)
        if m:
            out.append((i, float(m.group(1))))
    return out


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("no_color", COLOUR)
async def test_the_alpha_line_is_drawn_on_the_p_axis(size: tuple[int, int], no_color: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch, no_color)
    async with app.run_test(size=size) as pilot:
        script(src, 0, 3000)
        await settle(pilot, app, 2900)
        fsd = app.query_one(FsdPlot)
        rows = plot_rows(fsd)
        long = [i for i, row in enumerate(rows) if row.count("─") >= fsd.size.width // 2]
        assert len(long) == 1, "\n".join(rows)  # the alpha line, across the plot
        ticks = [(i, math.log10(v)) for i, v in _right_ticks(rows) if v > 0]
        (r1, y1), (r2, y2) = ticks[0], ticks[-1]
        expected = r1 + (math.log10(0.05) - y1) / (y2 - y1) * (r2 - r1)
        assert abs(long[0] - expected) <= 1, (long, ticks)  # at alpha on the right (p) axis
        assert rows[long[0]].rstrip().endswith("0.05")  # and labelled with it there


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("no_color", COLOUR)
async def test_fsd_and_its_p_value_read_apart_without_colour_and_the_null_is_named(
        size: tuple[int, int], no_color: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch, no_color)
    async with app.run_test(size=size) as pilot:
        rows = script(src, 0, 3000)
        await settle(pilot, app, 2900)
        fsd = app.query_one(FsdPlot)
        drawn = "\n".join(plot_rows(fsd))
        assert BRAILLE.search(drawn) and "•" in drawn  # FSD a braille line, p(FSD) a line of bullets
        title = title_of(fsd)
        probe = [r for r in rows if r["fsd"] is not None][-1]
        assert f"⠤⠒ FSD {probe['fsd']:.2f}" in title and f"•• p(FSD) {format_value(probe['fsd_p'])}" in title
        words = caption_words(fsd)
        assert "── alpha 0.05" in words and "sync" in words and "memorisation" in words
        assert "p(FSD): output-label permutation null, 1000 permutations, floor 1/1001" in words
        assert len(fsd.render().plain.split("\n")) <= fsd.size.height  # nothing cut off


@pytest.mark.parametrize("size", SIZES)
async def test_sync_marks_start_at_memorisation(size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch)
    async with app.run_test(size=size) as pilot:
        fsd = app.query_one(FsdPlot)
        marked: list[list[float]] = []
        scatter = fsd.plt.scatter
        monkeypatch.setattr(fsd.plt, "scatter", lambda x, *a, **kw: (marked.append(list(x)), scatter(x, *a, **kw)))
        script(src, 0, 1000, fsd_sync=True)  # p < alpha from the start, but train_acc < 0.99
        await settle(pilot, app, 900)
        assert marked == [] and "o" not in "\n".join(plot_rows(fsd))
        script(src, 1000, 2000, fsd_sync=True)  # memorised at 1000 (train_acc >= 0.99)
        await settle(pilot, app, 1900)
        assert app.state.memorised_at == 1000
        assert marked and min(marked[-1]) >= 1000 and "o" in "\n".join(plot_rows(fsd))
        assert "from memorisation" in caption_words(fsd)


# -- 4. the frequency panel and the progress view --------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_frequency_panel_says_what_it_shows(size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch)
    async with app.run_test(size=size) as pilot:
        script(src, 0, 2000)
        await settle(pilot, app, 1900)
        title = title_of(app.query_one(FreqPanel))
        assert "Fourier frequencies of" in title and "W_E" in title
        assert ("the embedding (W_E)" in title) == (size[0] >= 120)
        screen = screen_text(app)
        for piece in ("W_E", "W_L", "k    %", "14 30.0", "14 40.0", "key freqs 14 35 41", "W_L = W_out W_U"):
            assert piece in screen, piece


@pytest.mark.parametrize("size", SIZES)
async def test_rows_without_key_freqs_still_show_the_frequencies(size: tuple[int, int],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch)
    async with app.run_test(size=size) as pilot:
        script(src, 0, 2000, key_freqs=None)
        await settle(pilot, app, 1900)
        assert "14 30.0" in screen_text(app) and "key freqs" not in screen_text(app)
        await pilot.press("m")
        app.redraw()
        assert "top W_L freqs 14 41 35" in title_of(app.query_one(ProgressPlot))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("no_color", COLOUR)
async def test_m_shows_the_progress_measures_and_back(size: tuple[int, int], no_color: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch, no_color)
    async with app.run_test(size=size) as pilot:
        rows = script(src, 0, 3000)
        await settle(pilot, app, 2900)
        # the footer recomposes when the bindings' states change: wait for it
        await wait_for(pilot, lambda: "m Progress" in screen_text(app).splitlines()[-1], "m in the footer")
        assert "m" not in {k.key for r in interventions.REGISTRY for k in r.keys}
        views = app.query_one("#freq-views", ContentSwitcher)
        assert views.current == "freqs"
        progress = app.query_one(ProgressPlot)
        markers: list[str] = []
        plot = progress.plt.plot
        monkeypatch.setattr(progress.plt, "plot", lambda *a, **kw: (markers.append(kw.get("marker")), plot(*a, **kw)))
        await pilot.press("m")
        await pilot.pause()
        assert views.current == "progress" and progress.size.height > 0
        assert "progress measures  key freqs 14 35 41" in title_of(progress)
        words = caption_words(progress)
        probe = [r for r in rows if r["fsd"] is not None][-1]
        for name, key in (("restricted", "restricted_loss"), ("excluded", "excluded_loss"), ("Gini W_E", "gini_embed"),
                          ("Gini W_L", "gini_wl"), ("weight norm", "weight_norm")):
            assert re.search(rf"{name}( loss)? {re.escape(format_value(probe[key]))}", words), name
        assert len(markers) == 5 and len(set(markers)) == 5  # five lines, five markers: apart without colour
        drawn = "\n".join(plot_rows(progress))
        assert BRAILLE.search(drawn) and "+" in drawn and "x" in drawn
        progress.focus()
        await pilot.press("y")
        assert not progress.log_y and "[loss lin]" in title_of(progress)
        await pilot.press("m")
        await pilot.pause()
        assert views.current == "freqs" and "Fourier frequencies" in title_of(app.query_one(FreqPanel))


# -- 5. the help ---------------------------------------------------------------------------------


def help_text(screen: HelpScreen) -> str:
    out = []
    for static in screen.query(Static):
        console = Console(width=100, file=io.StringIO(), color_system=None)
        console.print(static.content)
        out.append(console.file.getvalue())  # type: ignore[attr-defined]
    return re.sub(r"\s+", " ", "\n".join(out))


@pytest.mark.parametrize("size", SIZES)
async def test_help_teaches_the_panels_markers_phases_and_fsd_and_scrolls(
        size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch)
    async with app.run_test(size=size) as pilot:
        script(src, 0, 1000)
        await settle(pilot, app, 900)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        words = help_text(app.screen)
        for piece in ("FSD", "p(FSD)", "output-label permutation null", "0 = chance", "1 = identical top frequencies",
                      "memorisation", "circuit formation", "train accuracy >= 0.99 while val accuracy is still low",
                      "cleanup", "after the FSD detector fired, before grokking", "generalised",
                      "val accuracy >= 0.95", "synchronised", "p(FSD) < alpha", "t_grok - t_fsd",
                      "docs/metrics.md", "accuracy", "loss", "Fourier frequencies", "progress measures",
                      "run directory", "ETA"):
            assert piece in words, piece
        for tag in ("D", "F", "G", "w", "l"):
            assert re.search(rf"(^| ){tag} \w", words), tag  # every marker letter, in words
        for key in ("w", "W", "d", "l", "p", "c", "y", "s", "m", "v", "?", "q"):
            assert re.search(rf"(^| ){re.escape(key)} ", words), key
        box = app.screen.query_one("#help-box", VerticalScroll)
        assert box.max_scroll_y > 0 and app.focused is box  # longer than the screen: it scrolls
        await pilot.press("end")
        await wait_for(pilot, lambda: box.scroll_y == box.max_scroll_y, "the help scrolled to its end")
        assert "docs/metrics.md" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), "the help to close")


# -- 6. a resumed run shows its whole history ----------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_a_resumed_run_shows_its_history_and_earlier_interventions(
        size: tuple[int, int], tiny: Config, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = RunSession.new(tiny, run_dir)  # 120 steps, rows every 20, checkpoints every 40
    first.open()
    first.send(Command("set_weight_decay", 2.0, source="key:w"))  # applied before the first step
    first.engine.replay_at(100, Command("set_lr", 1e-3, source="schedule:test"))  # after the checkpoint at 80
    first.run(handle_signals=False)
    for path in (run_dir / CHECKPOINTS).glob("*.pt"):  # the process died after its checkpoint at 80
        if int(path.stem.split("_")[1]) > 80:
            path.unlink()
    session = RunSession.resume(run_dir, max_steps=160)
    assert session.state is not None and session.state.step == 80
    source = LiveSource(session)
    app = GrokmonApp(source, redraw_interval=60)
    seen = record_notifications(app)  # before the app starts: the history is posted as it mounts
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: source.result is not None and app.state.ended, "the resumed run", tries=400,
                       delay=0.05)
        app.redraw()
        await pilot.pause()
        steps = [int(s) for s in app.state.steps]
        assert steps == list(range(0, 161, 20))  # the rows before the resume step, then the new ones
        markers = {(m.tag, m.step) for m in app.state.markers()}
        assert ("w", 0) in markers  # the earlier intervention keeps its marker
        assert not any(tag == "l" for tag, _ in markers)  # the old process's set_lr after step 80 is gone
        log = app.query_one(EventLog).lines_text
        assert any("weight_decay 1 -> 2 (key:w)" in line for line in log)
        assert any("resumed from the checkpoint at step 80" in line for line in log)
        assert sum("run finished" in m for m, _ in seen) == 1  # the old finish is history, not news
        acc = plot_rows(app.query_one(AccuracyPlot))
        assert acc[-1].split()[0] == "0" and "w" in "\n".join(acc)


# -- 7. axes and legends -------------------------------------------------------------------------


def tick_labels(plot: TimePlot) -> list[str]:
    return plot_rows(plot)[-1].split()


@pytest.mark.parametrize("size", SIZES)
async def test_step_axes_have_integer_ticks_with_k_suffixes(size: tuple[int, int],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch)
    async with app.run_test(size=size) as pilot:
        src.event("start", 0, device="cpu")
        for step in range(0, 2400, 25):  # an awkward span: plotext's own ticks land on 593.8 and the like
            src.row(**metrics_row(step, probe=step % 100 == 0))
        await settle(pilot, app, 2375)
        plots: list[TimePlot] = [app.query_one(c) for c in (AccuracyPlot, LossPlot, FsdPlot)]
        await pilot.press("m")
        app.redraw()
        await pilot.pause()
        plots.append(app.query_one(ProgressPlot))
        for plot in plots:
            labels = tick_labels(plot)
            assert len(labels) >= 2, plot.LABEL
            for label in labels:
                m = re.fullmatch(r"(\d+(?:\.\d+)?)([kM]?)", label)
                assert m, (plot.LABEL, label)
                value = float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6}[m.group(2)]
                assert value.is_integer() and (m.group(2) or "." not in label), (plot.LABEL, label)
            assert "0" in labels and ("1k" in labels or "2k" in labels)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("no_color", COLOUR)
async def test_legends_sit_in_the_title_line_not_over_the_data(size: tuple[int, int], no_color: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    app, src = make_app(monkeypatch, no_color)
    async with app.run_test(size=size) as pilot:
        script(src, 0, 2000)
        await settle(pilot, app, 1900)
        for plot in (app.query_one(AccuracyPlot), app.query_one(LossPlot)):
            title, drawn = title_of(plot), "\n".join(plot_rows(plot))
            assert "train" in title and "val" in title
            assert "train" not in drawn and "val" not in drawn
            if no_color:  # train and val by marker alone: braille and half blocks
                assert BRAILLE.search(drawn) and re.search("[▀▄▌▐▖▗▘▝▚▞]", drawn)
        fsd = "\n".join(plot_rows(app.query_one(FsdPlot)))
        assert "FSD" not in fsd and "p(FSD)" not in fsd
