"""RunState and the plot-data helpers, without Textual: folding rows and events, resumes, bounds, and the
registry-driven parts (hyperparameter values, markers and their tags, log lines, the value parser)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grokmon import interventions
from grokmon.events import Command
from grokmon.tui.event_log import describe_event
from grokmon.tui.series import Ema, downsample_indices, format_value, log10_masked, log_ticks, step_ticks
from grokmon.tui.state import Marker, RunState, short_name
from grokmon.tui.value_modal import parse_value
from tui_fakes import CONFIG, metrics_row

pytestmark = pytest.mark.unit


def ev(type_: str, step: int, **fields: object) -> dict[str, object]:
    return {"step": step, "wall_s": step / 100, "time": 0.0, "type": type_, **fields}


def test_config_sets_factor_alpha_max_steps_and_initial_hyperparameters() -> None:
    s = RunState({**CONFIG, "run": {"wd_factor": 3.0}, "metrics": {"alpha": 0.01}})
    assert (s.wd_factor, s.alpha, s.max_steps) == (3.0, 0.01, 10000)
    assert (s.value("weight_decay"), s.value("lr")) == (1.0, 1e-3)
    assert s.status == "waiting"
    assert RunState().wd_factor == 2.0 and RunState().value("weight_decay") is None


def test_rows_become_columns_with_t_grok_steps_per_s_and_elapsed() -> None:
    s = RunState(CONFIG)
    for step in range(0, 4000, 100):
        s.ingest_row(metrics_row(step, probe=step % 500 == 0))
    assert len(s) == 40 and s.steps[-1] == 3900
    assert s.column("train_acc")[10] == pytest.approx(1.0)
    assert np.isnan(s.column("fsd")[1]) and not np.isnan(s.column("fsd")[5])
    assert np.isnan(s.column("no_such_key")).all()
    acc = s.column("val_acc")
    assert s.t_grok == int(s.steps[np.argmax(acc >= 0.95)])
    assert s.steps_per_s == pytest.approx(100.0) and s.wall_s == pytest.approx(39.0)
    assert s.phase == "circuit formation" and s.status == "running"
    assert s.latest_probe is not None and s.latest_probe["step"] == 3500


def test_a_row_for_a_seen_step_replaces_it_and_everything_after() -> None:
    s = RunState(CONFIG)
    for step in range(0, 5000, 100):
        s.ingest_row(metrics_row(step, probe=step % 500 == 0))
    assert s.t_grok is not None and s.t_grok > 2000
    epoch = s.epoch
    s.ingest_row(metrics_row(2000, grok_at=99999))  # a resumed run rewrote metrics.jsonl from step 2000
    assert s.steps.tolist() == list(range(0, 2001, 100))
    assert s.epoch == epoch + 1
    assert s.t_grok is None  # the crossing was in the replaced rows
    assert s.latest_probe is not None and s.latest_probe["step"] == 1500
    assert all(len(s.column(k)) == len(s) for k in ("train_loss", "fsd", "fsd_sync"))


def test_an_intervention_sets_weight_decay_and_an_older_row_does_not_undo_it() -> None:
    s = RunState(CONFIG)
    s.ingest_row(metrics_row(1000, wd=1.0))
    s.ingest_event(ev("intervention", 1050, name="weight_decay", old=1.0, new=2.0, source="key:w"))
    assert s.value("weight_decay") == 2.0
    s.ingest_row(metrics_row(1000 + 0, wd=1.0, step_note=1))  # same step again: replaced, still old wd
    assert s.value("weight_decay") == 2.0
    s.ingest_row(metrics_row(1100, wd=2.0))
    assert s.value("weight_decay") == 2.0
    assert s.markers() == [Marker(1050, "intervention", "weight_decay 2", "w")]


def test_lr_follows_the_rows_and_set_lr_and_keys_scale_the_rate_that_was_set() -> None:
    s = RunState(CONFIG)  # optim.lr 1e-3
    s.ingest_row(metrics_row(0, lr=1e-4))  # the warm-up's first step: the rows carry the scaled rate
    assert s.value("lr") == 1e-4 and s.target("lr") == 1e-3  # a key scales the base rate set_lr sets
    s.ingest_row(metrics_row(100, lr=1e-3))
    s.ingest_event(ev("intervention", 200, name="lr", old=1e-3, new=4e-3, source="key:l"))
    assert s.value("lr") == 4e-3 and s.target("lr") == 4e-3
    s.ingest_row(metrics_row(200, lr=1e-3))  # evaluated before the change at its step
    assert s.value("lr") == 4e-3
    s.ingest_row(metrics_row(300, lr=4e-3))  # the row after the intervention carries the new value
    s.ingest_row(metrics_row(400, lr=3e-3))  # whatever the rows say from then on is what is shown
    assert s.value("lr") == 3e-3
    assert s.markers() == [Marker(200, "intervention", "lr 0.004", "l")]
    s.ingest_event(ev("resume", 100))  # from a checkpoint before the change: the base rate is the config's
    assert s.target("lr") == 1e-3 and s.markers() == []


def test_markers_labels_and_tags_come_from_the_registry() -> None:
    s = RunState(CONFIG)
    for name, new in (("weight_decay", 2.0), ("lr", 2e-3), ("pause", None), ("checkpoint", None)):
        s.ingest_event(ev("intervention", 100, name=name, old=None, new=new))
    tagged = {row.name: row.marker for row in interventions.REGISTRY if row.marker}
    assert [(m.label.split()[0], m.tag) for m in s.markers()] == [("weight_decay", tagged["weight_decay"]),
                                                                  ("lr", tagged["lr"])]


def test_event_log_lines_are_the_registry_rows_words() -> None:
    lines = [describe_event(ev("intervention", 5, name=name, old=old, new=new, source=source))[0]
             for name, old, new, source in (("lr", 1e-3, 2e-3, "key:l"), ("weight_decay", 1.0, 0.5, ""),
                                            ("pause", None, None, "key:p"), ("stop", None, None, "signal:SIGTERM"),
                                            ("mystery", None, None, "api"))]
    assert lines == ["lr 1e-3 -> 2e-3 (key:l)", "weight_decay 1 -> 0.5", "paused (key:p)",
                     "stop requested (signal:SIGTERM)", "mystery (api)"]


def test_pending_values_and_pause_clear_when_acknowledged_or_rejected() -> None:
    s = RunState(CONFIG)
    s.request(Command("set_weight_decay", 2.0, source="key:w"))
    s.request(Command("set_weight_decay", 4.0, source="key:w"))
    s.request(Command("set_lr", 2e-3, source="key:l"))
    assert s.target("weight_decay") == 4.0 and s.value("weight_decay") == 1.0
    assert s.pending("lr") == 2e-3 and s.target("lr") == 2e-3 and s.value("lr") == 1e-3
    s.ingest_event(ev("intervention", 10, name="weight_decay", old=1.0, new=2.0))
    assert s.pending("weight_decay") == 4.0  # the second request is still on its way
    s.ingest_event(ev("intervention", 10, name="weight_decay", old=2.0, new=4.0))
    assert s.pending("weight_decay") is None and s.value("weight_decay") == 4.0
    assert s.pending("lr") == 2e-3  # each hyperparameter's request is its own
    s.ingest_event(ev("intervention", 10, name="lr", old=1e-3, new=2e-3))
    assert s.pending("lr") is None and s.value("lr") == 2e-3
    s.request(Command("pause", source="key:p"))
    assert s.target_paused and not s.paused
    s.ingest_event(ev("intervention", 11, name="pause"))
    assert s.paused and s.status == "paused" and s.pending_pause is None
    s.request(Command("set_weight_decay", 8.0))
    s.request(Command("set_lr", 1e-2))
    s.ingest_event(ev("alert", 11, kind="command_rejected", message="bad line"))
    assert s.pending("weight_decay") is None and s.pending("lr") is None
    s.ingest_event(ev("intervention", 11, name="resume"))
    assert not s.paused and s.status == "running"


def test_short_names_for_the_status_bar_and_footer() -> None:
    assert [short_name(n) for n in ("weight_decay", "lr", "attn_dropout", "x")] == ["wd", "lr", "ad", "x"]


def test_fsd_alert_grok_markers_finish_and_failure() -> None:
    s = RunState(CONFIG)
    s.ingest_event(ev("start", 0, device="cpu"))
    s.ingest_event(ev("alert", 2600, kind="fsd_ceiling", message="fired"))
    s.ingest_event(ev("alert", 2700, kind="fsd_ceiling", message="again"))
    for step in range(0, 4000, 100):
        s.ingest_row(metrics_row(step))
    assert s.t_fsd_online == 2600
    # the online detector is tagged D, apart from the offline ceiling (F, none in these rows) and t_grok
    assert {m.kind: (m.step, m.tag) for m in s.markers()} == {"detector": (2600, "D"), "grok": (s.t_grok, "G")}
    s.ingest_event(ev("finish", 3900, status="completed", reason="max_steps"))
    assert s.status == "finished" and s.ended and s.finished == "completed"
    s.ingest_event(ev("failed", 3900, error="RuntimeError: boom"))
    assert s.status == "failed" and s.error == "RuntimeError: boom"


def test_resume_event_forgets_the_old_timeline_after_its_step() -> None:
    s = RunState(CONFIG)
    for step in range(0, 5000, 100):
        s.ingest_row(metrics_row(step))
    s.ingest_event(ev("intervention", 4200, name="weight_decay", old=1.0, new=2.0))
    s.ingest_event(ev("alert", 4300, kind="fsd_ceiling", message="fired"))
    s.ingest_event(ev("finish", 4900, status="interrupted"))
    s.ingest_event(ev("resume", 2000))
    assert s.status == "running" and s.step == 2000
    assert s.steps[-1] == 2000 and s.t_grok is None and s.t_fsd_online is None and s.markers() == []


def test_a_resume_keeps_the_interventions_up_to_its_step_once_and_the_events_follow_the_rows() -> None:
    s = RunState(CONFIG)
    for step in range(0, 3000, 100):
        s.ingest_row(metrics_row(step, probe=step % 200 == 0))
    before = ev("intervention", 800, name="weight_decay", old=1.0, new=2.0, source="key:w")
    at = ev("intervention", 1000, name="lr", old=1e-3, new=2e-3, source="key:l")
    s.ingest_event(before)
    s.ingest_event(at)
    s.ingest_event(ev("intervention", 1500, name="weight_decay", old=2.0, new=4.0, source="key:w"))
    s.ingest_event(ev("resume", 1000))
    s.ingest_event(at)  # the resumed engine applies the one at its checkpoint's step again
    assert [(m.tag, m.step) for m in s.markers()] == [("w", 800), ("l", 1000)]
    assert s.target("weight_decay") == 2.0 and s.steps[-1] == 1000
    assert s.events()["t_grok"] is None and s.why("t_grok").startswith("not yet (best val_acc")


def test_rows_past_the_bound_are_thinned_not_lost_at_the_ends() -> None:
    s = RunState(CONFIG, max_rows=100)
    for step in range(1000):
        s.ingest_row({"step": step, "wall_s": step, "train_loss": 1.0})
    assert len(s) <= 100 and s.steps[0] == 0 and s.steps[-1] == 999
    assert np.all(np.diff(s.steps) > 0)


def test_downsample_keeps_ends_and_spikes_and_bounds_points() -> None:
    x = np.arange(100_000, dtype=float)
    y = np.ones_like(x)
    y[54_321] = 1e6
    y[777] = np.nan
    idx = downsample_indices(x, [y], 50)
    assert len(idx) <= 50 * 3 + 1
    assert idx[0] == 0 and idx[-1] == len(x) - 1 and 54_321 in idx
    assert downsample_indices(x[:60], [y[:60]], 50).tolist() == list(range(60))


def test_debiased_ema_starts_at_the_first_value_skips_nan_and_continues_incrementally() -> None:
    y = np.array([2.0, np.nan, 4.0, 4.0, 1.0])
    out = Ema(0.5).update(y)
    assert out[0] == 2.0 and np.isnan(out[1])
    assert out[2] == pytest.approx((0.25 * 2 + 0.5 * 4) / 0.75)
    ema = Ema(0.9)
    part = ema.update(y[:3])
    full = ema.update(y)
    assert np.array_equal(full[:3], part, equal_nan=True)
    assert np.allclose(full, Ema(0.9).update(y), equal_nan=True)
    assert ema.update(y[:2], epoch=1).tolist()[0] == 2.0  # a new epoch restarts


def test_log_helpers_mask_non_positive_and_label_decades() -> None:
    assert np.isnan(log10_masked(np.array([0.0, -1.0, np.nan]))).all()
    assert log10_masked(np.array([100.0]))[0] == pytest.approx(2.0)
    ticks, labels = log_ticks(-3.2, 0.1, 4)
    assert ticks == [-3.0, -2.0, -1.0, 0.0] and labels == ["1e-3", "0.01", "0.1", "1"]
    assert step_ticks(0, 10_000, 5) == ([0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0],
                                        ["0", "2k", "4k", "6k", "8k", "10k"])
    assert [format_value(v) for v in (None, 0.0, 0.25, 1e-4, 2.0, math.nan)] == ["-", "0", "0.25", "1e-4", "2", "-"]


@pytest.mark.parametrize("kind,text,ok", [
    ("set_weight_decay", "0.5", True), ("set_weight_decay", "0", True), ("set_weight_decay", "1e-3", True),
    ("set_weight_decay", " 2 ", True), ("set_weight_decay", "", False), ("set_weight_decay", "abc", False),
    ("set_weight_decay", "-1", False), ("set_weight_decay", "nan", False), ("set_weight_decay", "inf", False),
    ("set_weight_decay", "1e5", False), ("set_lr", "1e-3", True), ("set_lr", "0", False), ("set_lr", "11", False)])
def test_typed_values_are_checked_against_the_rows_range_and_the_error_names_it(kind: str, text: str, ok: bool) -> None:
    row = interventions.BY_KIND[kind]
    value, error = parse_value(text, row)
    assert (value is not None) == ok and (error == "") == ok
    assert ok or str(row.values) in error


def test_schedule_note_says_what_the_schedule_will_do_then_when_it_did() -> None:
    from grokmon.tui.status_bar import status_text

    assert RunState(CONFIG).schedule_note is None
    s = RunState({**CONFIG, "schedule": {"weight_decay": "fsd", "kappa": 2.5, "at_step": 0}})
    assert s.schedule_note == "schedule fsd: x2.5 at the FSD ceiling"
    s.ingest_event(ev("intervention", 1200, name="weight_decay", old=1.0, new=2.5, source="schedule:fsd"))
    assert s.schedule_note == "schedule fsd: raised at step 1200"
    assert "schedule fsd: raised at step 1200" in status_text(s, "live").plain
    step = RunState({**CONFIG, "schedule": {"weight_decay": "step", "kappa": 2.0, "at_step": 3000}})
    assert step.schedule_note == "schedule step: x2 at step 3000"


def test_the_status_bar_names_a_training_precision_other_than_fp32() -> None:
    from grokmon.tui.status_bar import status_text

    assert "precision" not in status_text(RunState(CONFIG), "live", "runs/x").plain
    bf16 = RunState({**CONFIG, "train": {**CONFIG.get("train", {}), "precision": "bf16"}})
    assert "precision bf16" in status_text(bf16, "live", "runs/x").plain


def test_the_fsd_detector_alert_is_named_once_in_the_event_log() -> None:
    engine_message = "FSD detector fired (online rule): FSD 0.965, p(FSD) 0.000999"
    text, _ = describe_event({"type": "alert", "kind": "fsd_ceiling", "step": 1150, "message": engine_message})
    assert text.count("FSD detector fired") == 1 and "FSD 0.965" in text
    text, _ = describe_event({"type": "alert", "kind": "fsd_ceiling", "step": 1150, "message": "FSD 0.9"})
    assert text == "FSD detector fired (online rule): FSD 0.9"
