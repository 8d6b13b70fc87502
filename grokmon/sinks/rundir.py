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

GROK_LEVELS = {"t_grok_50": 0.5, "t_grok": 0.95, "t_grok_99": 0.99}
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
    rows = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


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

    def __init__(self, path: Path, *, resume_step: int | None = None, eval_every: int = 1) -> None:
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self.rows: list[dict[str, Any]] = []
        self.status = "running"
        self.path.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        if resume_step is not None:
            self._truncate_metrics(resume_step, eval_every)
        self._metrics: IO[str] = (self.path / "metrics.jsonl").open("a", encoding="utf-8")
        self._events: IO[str] = (self.path / "events.jsonl").open("a", encoding="utf-8")

    def _truncate_metrics(self, step: int, eval_every: int) -> None:
        """On resume, keep the rows the resumed run would have written itself: up to its checkpoint step,
        without an off-schedule final evaluation at that step (the uninterrupted run has none)."""
        keep = [r for r in read_jsonl(self.path / "metrics.jsonl")
                if isinstance(r.get("step"), int) and (r["step"] < step or (r["step"] == step and step % eval_every == 0))]
        tmp = self.path / "metrics.jsonl.tmp"
        tmp.write_text("".join(dumps(r) + "\n" for r in keep))
        os.replace(tmp, self.path / "metrics.jsonl")
        self.rows = keep

    # -- sink --------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, Evaluation):
            row = event.record()
            self.rows.append(row)
            self._line(self._metrics, row)
        elif isinstance(event, Intervention):
            self._event("intervention", event.step, event.wall_s, name=event.name, old=event.old,
                        new=event.new, source=event.source)
        elif isinstance(event, Alert):
            self._event("alert", event.step, event.wall_s, kind=event.kind, message=event.message)
        elif isinstance(event, CheckpointSaved):
            self._event("checkpoint", event.step, event.wall_s, path=event.path)
        elif isinstance(event, Finished):
            self.status = event.status
            self._event("finish", event.step, event.wall_s, status=event.status, reason=event.reason)
            self.write_summary(event.step, event.wall_s)
        elif isinstance(event, Failed):
            self.status = "failed"
            (self.path / "error.log").write_text(event.traceback)
            self._event("failed", event.step, event.wall_s, error=event.error)
            self.write_summary(event.step, event.wall_s, error=event.error)

    def _started(self, event: RunStarted) -> None:
        config = dict(event.config)
        if not event.resumed or not (self.path / "config.json").exists():
            write_json_atomic(self.path / "config.json", {
                **config, "torch_version": event.torch_version, "device": event.device,
                "n_params": event.n_params, "n_train": event.n_train, "n_val": event.n_val,
            })
        else:  # a resume may change max_steps and the like: the file says what the run now is
            old = json.loads((self.path / "config.json").read_text())
            old.update(config)
            write_json_atomic(self.path / "config.json", old)
        self._event("resume" if event.resumed else "start", event.step, event.wall_s, device=event.device)

    def _line(self, f: IO[str], obj: dict[str, Any]) -> None:
        f.write(dumps(obj) + "\n")
        f.flush()

    def _event(self, type_: str, step: int, wall_s: float, **fields: Any) -> None:
        self._line(self._events, {"step": step, "wall_s": round(wall_s, 3), "time": round(time.time(), 3),
                                  "type": type_, **fields})

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
        summary = summarise(self.rows)
        summary.update({"status": self.status, "steps": step, "wall_s": round(wall_s, 3)})
        if error:
            summary["error"] = error
        write_json_atomic(self.path / "summary.json", summary)

    def close(self) -> None:
        self._metrics.close()
        self._events.close()


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Final and best metrics and the grokking crossings, from metrics.jsonl rows."""
    best: dict[str, Any] = {}
    for key in BEST_MAX + BEST_MIN:
        vals = [(r[key], r["step"]) for r in rows if isinstance(r.get(key), (int, float))]
        if vals:
            pick = max(vals, key=lambda v: v[0]) if key in BEST_MAX else min(vals, key=lambda v: v[0])
            best[key] = {"value": pick[0], "step": pick[1]}
    out: dict[str, Any] = {"final": rows[-1] if rows else None, "best": best}
    for name, level in GROK_LEVELS.items():
        out[name] = next((r["step"] for r in rows if (r.get("val_acc") or 0.0) >= level), None)
    return out
