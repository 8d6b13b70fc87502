"""The run directory: config.json, metrics.jsonl, events.jsonl, summary.json, error.log, checkpoints/.

A sink (events in, files out) and the engine's Checkpointer. Every line is written whole and flushed so
`tail -f`, `jq` and `grokmon watch` can follow a live run. Knows nothing about the UI.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, IO

import torch

from grokmon.errors import ConfigError
from grokmon.events import (
    Alert, CheckpointSaved, Evaluation, Event, Failed, Finished, Intervention, RunStarted, finite_or_none,
)
from grokmon.metrics.grokking import (
    OnlineCeilingDetector, excluded_loss_baseline, fsd_ceiling_offline, grok_times, lead,
)
from grokmon.sinks.follow import JsonlFollower

BEST_MAX = ("train_acc", "val_acc")
BEST_MIN = ("train_loss", "val_loss")
_CKPT = re.compile(r"^step_(\d+)\.pt$")


def dumps(obj: Any) -> str:
    """One JSON line; NaN/Infinity become null and anything that slips through is an error, not 'NaN'."""
    return json.dumps(finite_or_none(obj), allow_nan=False, separators=(", ", ": "))


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(finite_or_none(obj), allow_nan=False, indent=2) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line; a partial last line (a writer mid-write) is skipped."""
    return JsonlFollower(path).read_new()


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def checkpoints(run_dir: Path) -> dict[int, Path]:
    """step -> checkpoint file, for every complete checkpoint in the run directory."""
    found = {}
    for f in (run_dir / "checkpoints").glob("step_*.pt"):
        m = _CKPT.match(f.name)
        if m:
            found[int(m.group(1))] = f
    return dict(sorted(found.items()))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A full training state, loaded with weights_only=True (no pickled code runs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a truncated or foreign file
        raise ConfigError(f"not a readable grokmon checkpoint ({type(e).__name__})", source=str(path)) from None


class RunDir:
    """Writes one run's directory. Use as a sink (call it with events) and as the engine's Checkpointer."""

    def __init__(self, path: Path, *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self.rows: list[dict[str, Any]] = []
        self.status = "running"
        self.alpha = 0.05
        self.path.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        if resume_step is not None:
            self._truncate(resume_step)
        self._metrics: IO[str] = (self.path / "metrics.jsonl").open("a", encoding="utf-8")
        self._events: IO[str] = (self.path / "events.jsonl").open("a", encoding="utf-8")
        self._spectra: IO[str] = (self.path / "spectra.jsonl").open("a", encoding="utf-8")

    def _truncate(self, step: int) -> None:
        """On resume, keep the rows from before the checkpoint's step: the resumed engine evaluates that
        step again (if it is on schedule) and everything after it."""
        for name in ("metrics.jsonl", "spectra.jsonl"):
            keep = [r for r in read_jsonl(self.path / name) if isinstance(r.get("step"), int) and r["step"] < step]
            tmp = self.path / f"{name}.tmp"
            tmp.write_text("".join(dumps(r) + "\n" for r in keep))
            os.replace(tmp, self.path / name)
            if name == "metrics.jsonl":
                self.rows = keep

    # -- sink --------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, Evaluation):
            row = event.record()
            self.rows.append(row)
            self._line(self._metrics, row)
            if event.spectra:
                self._line(self._spectra, {"step": event.step, **event.spectra})
        if isinstance(event, Finished):
            self.status = event.status
        elif isinstance(event, Failed):
            self.status = "failed"
            (self.path / "error.log").write_text(event.traceback)
        record = event_record(event)
        if record is not None:
            self._line(self._events, record)
        if isinstance(event, (Finished, Failed)):
            self.write_summary(event.step, event.wall_s, error=getattr(event, "error", ""))

    def _started(self, event: RunStarted) -> None:
        config = dict(event.config)
        self.alpha = float(config.get("metrics", {}).get("alpha", self.alpha))
        if not event.resumed or not (self.path / "config.json").exists():
            write_json_atomic(self.path / "config.json", {
                **config, "torch_version": event.torch_version, "device": event.device,
                "n_params": event.n_params, "n_train": event.n_train, "n_val": event.n_val,
            })
        else:  # a resume may change max_steps and the like: the file says what the run now is
            old = json.loads((self.path / "config.json").read_text())
            old.update(config)
            write_json_atomic(self.path / "config.json", old)

    def _line(self, f: IO[str], obj: dict[str, Any]) -> None:
        f.write(dumps(obj) + "\n")
        f.flush()

    # -- checkpointer ------------------------------------------------------------------------

    def save(self, step: int, state: dict[str, Any]) -> str:
        """Write checkpoints/step_N.pt atomically (a crash mid-write leaves the previous ones intact)."""
        final = self.ckpt_dir / f"step_{step:08d}.pt"
        tmp = self.ckpt_dir / f".step_{step:08d}.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, final)
        return str(final.relative_to(self.path))

    # -- summary -----------------------------------------------------------------------------

    def write_summary(self, step: int, wall_s: float, error: str = "") -> None:
        summary = summarise(self.rows, self.alpha)
        summary.update({"status": self.status, "steps": step, "wall_s": round(wall_s, 3)})
        if error:
            summary["error"] = error
        write_json_atomic(self.path / "summary.json", summary)

    def close(self) -> None:
        for f in (self._metrics, self._events, self._spectra):
            f.close()


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
        type_, fields = "finish", {"status": event.status, "reason": event.reason}
    elif isinstance(event, Failed):
        type_, fields = "failed", {"error": event.error}
    else:
        return None
    return finite_or_none({"step": event.step, "wall_s": round(event.wall_s, 3), "time": round(time.time(), 3),
                           "type": type_, **fields})


def summarise(rows: list[dict[str, Any]], alpha: float = 0.05) -> dict[str, Any]:
    """Final and best metrics, the grokking crossings and the FSD events, from metrics.jsonl rows."""
    best: dict[str, Any] = {}
    for key in BEST_MAX + BEST_MIN:
        vals = [(r[key], r["step"]) for r in rows if isinstance(r.get(key), (int, float))]
        if vals:
            pick = max(vals, key=lambda v: v[0]) if key in BEST_MAX else min(vals, key=lambda v: v[0])
            best[key] = {"value": pick[0], "step": pick[1]}
    out: dict[str, Any] = {"final": rows[-1] if rows else None, "best": best}
    out.update(run_events(rows, alpha))
    return out


def run_events(rows: list[dict[str, Any]], alpha: float = 0.05) -> dict[str, Any]:
    """t_grok_50 / t_grok / t_grok_99, t_fsd (offline), t_fsd_online, t_excluded and lead, from rows."""
    ev = [r for r in rows if isinstance(r.get("val_acc"), (int, float))]
    times = grok_times([r["step"] for r in ev], [r["val_acc"] for r in ev]) if ev else None
    out: dict[str, Any] = {
        "t_grok_50": times.t50 if times else None,
        "t_grok": times.t95 if times else None,
        "t_grok_99": times.t99 if times else None,
        "t_fsd": None, "t_fsd_online": None, "t_excluded": None, "lead": None,
    }
    probed = [r for r in ev if isinstance(r.get("fsd"), (int, float)) and isinstance(r.get("fsd_p"), (int, float))]
    if probed:
        col = lambda k: [r[k] for r in probed]  # noqa: E731
        out["t_fsd"] = fsd_ceiling_offline(col("step"), col("fsd"), col("fsd_p"), col("train_acc"),
                                           col("val_acc"), alpha)
        detector = OnlineCeilingDetector(alpha)  # the engine's detector, replayed: same rule, same answer
        for r in probed:
            detector.update(r["step"], r["fsd"], r["fsd_p"])
        out["t_fsd_online"] = detector.fired_at
        ex = [r for r in probed if isinstance(r.get("excluded_loss"), (int, float))]
        if ex:
            out["t_excluded"] = excluded_loss_baseline([r["step"] for r in ex], [r["excluded_loss"] for r in ex],
                                                       [r["train_acc"] for r in ex])
        out["lead"] = lead(out["t_grok"], out["t_fsd"])
    return out
