"""The run directory's records: the keys of metrics rows, events and the summary, declared once, and the
functions that turn engine events into those records and check records read back.

Pure: no files, no torch. A new metric is its function in grokmon.metrics plus its key here.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Mapping

from grokmon.events import (
    Alert, CheckpointSaved, Event, Failed, Finished, Intervention, RunStarted, finite_or_none,
)
from grokmon.metrics.keys import PROBE_KEYS

# metrics.jsonl: every row has the base keys, in this order; a run with the Fourier probe on adds the probe
# keys to every row (null on evaluations that were not probed, except "phase").
BASE_ROW_KEYS = ("step", "wall_s", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "weight_decay")
PROBE_ROW_KEYS = PROBE_KEYS  # declared with the probe, in grokmon/metrics/keys.py
METRIC_ROW_KEYS = BASE_ROW_KEYS + PROBE_ROW_KEYS

# events.jsonl: every record has step, wall_s, time (Unix seconds) and type; then the type's own fields.
EVENT_COMMON_KEYS = ("step", "wall_s", "time", "type")
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("device",),
    "resume": ("device",),
    "intervention": ("name", "old", "new", "source"),  # name: a grokmon.interventions row's name
    "alert": ("kind", "message"),  # kind: fsd_ceiling, nonfinite_loss, command_rejected, ...
    "checkpoint": ("path",),
    "finish": ("status", "reason"),
    "failed": ("error",),
}

# summary.json: written when a run ends. t_excluded uses the final checkpoint's key frequencies (recomputed
# from checkpoints, grokmon.offline); t_excluded_online the logged excluded_loss (each checkpoint's own keys).
RUN_EVENT_KEYS = ("t_grok_50", "t_grok", "t_grok_99", "t_fsd", "t_fsd_online", "t_excluded", "t_excluded_online",
                  "lead")
SUMMARY_KEYS = ("final", "best") + RUN_EVENT_KEYS + ("excluded_offline", "status", "steps", "wall_s", "error")
# summary.json's excluded_offline: how t_excluded was recomputed (grokmon.offline.OfflineExcluded.record).
EXCLUDED_OFFLINE_KEYS = ("t_excluded", "key_freqs", "final_step", "n_checkpoints", "n_probed", "n_analysed",
                         "missing")
STATUSES = ("completed", "stopped", "interrupted", "diverged", "failed")
# Statuses of a run that ended for good (its own rule, the user's stop, a non-finite loss). Any other (running,
# interrupted, crashed, failed) can go on: its offline events, the final keys behind t_excluded included, may move.
ENDED = ("completed", "stopped", "diverged")
# Of those, the ones that training again would not change: a run's own end (completed) and a non-finite loss
# (diverged: a resume replays the same steps to it). fork and sweep skip these; a stopped run is resumed.
DONE = ("completed", "diverged")


def dumps(obj: Any) -> str:
    """One JSON line; NaN/Infinity become null and anything that slips through is an error, not 'NaN'."""
    return json.dumps(finite_or_none(obj), allow_nan=False, separators=(", ", ": "))


def event_record(event: Event) -> dict[str, Any] | None:
    """The events.jsonl line of an event (None for evaluations, which go to metrics.jsonl)."""
    fields: dict[str, Any]
    if isinstance(event, RunStarted):
        type_, fields = ("resume" if event.resumed else "start"), {"device": event.device}
    elif isinstance(event, Intervention):
        type_, fields = "intervention", {"name": event.name, "old": event.old, "new": event.new,
                                         "source": event.source}
    elif isinstance(event, Alert):
        type_, fields = "alert", {"kind": event.kind, "message": event.message}
    elif isinstance(event, CheckpointSaved):
        type_, fields = "checkpoint", {"path": event.path}
    elif isinstance(event, Finished):
        type_, fields = "finish", {"status": str(event.status), "reason": event.reason}
    elif isinstance(event, Failed):
        type_, fields = "failed", {"error": event.error}
    else:
        return None
    assert tuple(fields) == EVENT_FIELDS[type_], type_  # the declaration above is the contract
    return finite_or_none({"step": event.step, "wall_s": round(event.wall_s, 3), "time": round(time.time(), 3),
                           "type": type_, **fields})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def valid_row(row: Any) -> bool:
    """A metrics row a reader can use: an object with an integer step >= 0 (other keys may be null)."""
    return isinstance(row, Mapping) and _is_int(row.get("step")) and row["step"] >= 0


def valid_event(record: Any) -> bool:
    """An events.jsonl record a reader can use: a known type and an integer step."""
    return (isinstance(record, Mapping) and record.get("type") in EVENT_FIELDS and _is_int(record.get("step")))


def number(row: Mapping[str, Any], key: str) -> float | None:
    """A finite number from a record, or None (missing, null, a string, a bool)."""
    value = row.get(key)
    return float(value) if _is_number(value) else None


def step_or_none(value: Any) -> int | None:
    return int(value) if _is_int(value) and value >= 0 else None


def clean_summary(raw: Any) -> dict[str, Any] | None:
    """summary.json as readers may use it: an object whose status is a known string, whose event keys
    are steps or null and steps / wall_s numbers or null; None for anything else (garbage, wrong types)."""
    if not isinstance(raw, Mapping) or raw.get("status") not in STATUSES:
        return None
    out = dict(raw)
    for key in RUN_EVENT_KEYS:
        value = raw.get(key)
        out[key] = int(value) if _is_int(value) else None  # lead may be negative
    if "t_excluded_online" not in raw:  # written before the offline baseline: its t_excluded is the online one
        out["t_excluded_online"], out["t_excluded"] = out["t_excluded"], None
    out["excluded_offline"] = clean_excluded_offline(raw.get("excluded_offline"))
    out["steps"] = step_or_none(raw.get("steps"))
    out["wall_s"] = float(raw["wall_s"]) if _is_number(raw.get("wall_s")) else None
    out["final"] = raw.get("final") if isinstance(raw.get("final"), Mapping) else None
    out["best"] = raw.get("best") if isinstance(raw.get("best"), Mapping) else {}
    out["error"] = str(raw.get("error", "")) if raw.get("error") else ""
    return out


def clean_excluded_offline(raw: Any) -> dict[str, Any] | None:
    """summary.json's excluded_offline record typed (EXCLUDED_OFFLINE_KEYS), or None if absent or unusable."""
    if not isinstance(raw, Mapping):
        return None
    keys = raw.get("key_freqs")
    if not isinstance(keys, list) or not all(_is_int(k) for k in keys):
        return None
    out: dict[str, Any] = {"t_excluded": step_or_none(raw.get("t_excluded")), "key_freqs": [int(k) for k in keys],
                           "final_step": step_or_none(raw.get("final_step"))}
    for key in ("n_checkpoints", "n_probed", "n_analysed"):
        out[key] = step_or_none(raw.get(key)) or 0
    out["missing"] = str(raw.get("missing") or "")
    return out
