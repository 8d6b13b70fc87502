"""Writing one run directory: the sink that turns engine events into files, and the engine's Checkpointer.

Every line is written whole and flushed so `tail -f`, `jq` and `grokmon watch` can follow a live run;
JSON files and checkpoints are replaced atomically. Knows nothing about the UI or signals.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any, Callable

from grokmon import __version__
from grokmon.errors import GrokmonError
from grokmon.events import Event, Evaluation, Failed, Finished, RunStarted, finite_or_none
from grokmon.metrics.runs import summarise
from grokmon.rundir import layout
from grokmon.rundir.readers import read_json, read_jsonl
from grokmon.rundir.records import ENDED, dumps, event_record, valid_row
from grokmon.trainstate import TrainingState


def _disk_reason(path: Path, exc: Exception) -> str:
    """torch's zip writer reports a full disk as an internal assertion: say what it most likely is."""
    import shutil

    try:
        if shutil.disk_usage(path).free < 64 * 2**20:
            return "no space left on the device"
    except OSError:
        pass
    return str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__


class RunDirWriteError(GrokmonError):
    """A file of the run directory could not be written (a full disk, a lost mount, permissions)."""


def _open_append(path: Path) -> IO[str]:
    """Open a log for appending; a partial last line (a write cut short) is ended first, so the next record
    starts on a line of its own (readers skip the broken one)."""
    f = path.open("a+", encoding="utf-8")
    if f.tell() > 0:
        f.seek(f.tell() - 1)
        if f.read(1) != "\n":
            f.write("\n")
    return f


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace a JSON file whole: a crash leaves the old file or the new one, never half of either."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps(finite_or_none(obj), allow_nan=False, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RunDir:
    """Writes one run's directory. Use as a sink (call it with events) and as the engine's Checkpointer."""

    def __init__(self, path: Path, *, resume_step: int | None = None,
                 excluded_analysis: Callable[[Path, list[dict[str, Any]]], dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        # (run dir, rows) -> the offline excluded-loss record, at the summary of a run that has ended; given by
        # the session (grokmon.offline), so that this layer stays free of the model. It must not raise.
        self.excluded_analysis = excluded_analysis
        self.ckpt_dir = self.path / layout.CHECKPOINTS
        self.rows: list[dict[str, Any]] = []
        self.status = "running"
        self.alpha = 0.05
        self.path.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        if resume_step is not None:
            self._truncate(resume_step)
        else:
            self.rows = [r for r in read_jsonl(self.path / layout.METRICS) if valid_row(r)]  # a fork's history
        self._metrics: IO[str] = _open_append(self.path / layout.METRICS)
        self._events: IO[str] = _open_append(self.path / layout.EVENTS)
        self._spectra: IO[str] = _open_append(self.path / layout.SPECTRA)
        self.write_error: str | None = None  # the first write that failed; later writes are best effort

    def _truncate(self, step: int) -> None:
        """On resume, keep the rows from before the checkpoint's step: the resumed engine evaluates that
        step again (if it is on schedule) and everything after it."""
        for name in (layout.METRICS, layout.SPECTRA):
            keep = [r for r in read_jsonl(self.path / name) if valid_row(r) and r["step"] < step]
            tmp = self.path / f".{name}.tmp"
            tmp.write_text("".join(dumps(r) + "\n" for r in keep))
            os.replace(tmp, self.path / name)
            if name == layout.METRICS:
                self.rows = keep

    # -- sink --------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, Failed) or self.write_error is not None:
            self._record_best_effort(event)  # the run is ending: keep what can be kept, never raise again
            return
        try:
            self._record(event)
        except OSError as e:
            name = Path(e.filename).name if getattr(e, "filename", None) else "a file"
            self.write_error = f"cannot write {name} in {self.path}: {e.strerror or e}"
            raise RunDirWriteError(self.write_error) from None

    def _record_best_effort(self, event: Event) -> None:
        """Each part on its own, so a full disk that refuses the traceback still gets the summary's status."""
        if isinstance(event, Failed):
            self.status = "failed"
        parts = [lambda: self._record(event, summary=False)]
        if isinstance(event, (Finished, Failed)):
            parts.append(lambda: self.write_summary(event.step, event.wall_s, error=getattr(event, "error", "")))
        if isinstance(event, Failed):
            parts.append(lambda: (self.path / layout.ERROR_LOG).write_text(event.traceback))
        for part in parts:
            try:
                part()
            except (OSError, RunDirWriteError):
                pass

    def _record(self, event: Event, summary: bool = True) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, Evaluation):
            row = event.record()
            self.rows.append(row)
            self._line(self._metrics, row)
            if event.spectra:
                self._line(self._spectra, {"step": event.step, **event.spectra})
        if isinstance(event, Finished):
            self.status = str(event.status)
        elif isinstance(event, Failed):
            self.status = "failed"
        record = event_record(event)
        if record is not None:
            self._line(self._events, record)
        if summary and isinstance(event, (Finished, Failed)):
            self.write_summary(event.step, event.wall_s, error=getattr(event, "error", ""))

    def _started(self, event: RunStarted) -> None:
        """config.json holds the config alone (a resume may change max_steps: the file says what the run now
        is); run.json the metadata, with one entry per start or resume."""
        config = dict(event.config)
        self.alpha = float(config.get("metrics", {}).get("alpha", self.alpha))
        write_json_atomic(self.path / layout.CONFIG, config)
        meta = read_json(self.path / layout.META) if event.resumed else None
        meta = meta or {"format": layout.FORMAT_VERSION, "starts": []}
        starts = meta.get("starts") if isinstance(meta.get("starts"), list) else []
        starts.append({"step": event.step, "time": round(time.time(), 3), "resumed": event.resumed,
                       "host": socket.gethostname(), "pid": os.getpid()})
        meta.update({
            "format": layout.FORMAT_VERSION, "grokmon_version": __version__, "torch_version": event.torch_version,
            "device": event.device, "n_params": event.n_params, "n_train": event.n_train, "n_val": event.n_val,
            "starts": starts,
        })
        write_json_atomic(self.path / layout.META, meta)

    def _line(self, f: IO[str], obj: dict[str, Any]) -> None:
        try:
            f.write(dumps(obj) + "\n")
            f.flush()
        except OSError as e:
            e.filename = e.filename or f.name
            raise

    # -- checkpointer ------------------------------------------------------------------------

    def save(self, step: int, state: TrainingState) -> str:
        """Write checkpoints/step_N.pt atomically (a crash mid-write leaves the previous ones intact)."""
        import torch

        final = self.ckpt_dir / layout.checkpoint_name(step)
        tmp = self.ckpt_dir / f".{final.name}.tmp"
        try:
            with tmp.open("wb") as f:  # our own file object: closed (its space freed) even when torch fails
                torch.save(state.to_dict(), f)
            os.replace(tmp, final)
        except Exception as e:  # torch reports a full disk as a RuntimeError from its zip writer
            tmp.unlink(missing_ok=True)
            reason = e.strerror if isinstance(e, OSError) and e.strerror else _disk_reason(self.path, e)
            self.write_error = f"cannot write checkpoint {final.name} in {self.path}: {reason}"
            raise RunDirWriteError(self.write_error) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return str(final.relative_to(self.path))

    # -- summary -----------------------------------------------------------------------------

    def write_summary(self, step: int, wall_s: float, error: str = "") -> None:
        excluded = None
        if self.excluded_analysis is not None and self.status in ENDED:  # an interrupted run does not wait
            excluded = self.excluded_analysis(self.path, self.rows)
        summary = summarise(self.rows, self.alpha, excluded)
        summary.update({"status": self.status, "steps": step, "wall_s": round(wall_s, 3)})
        if error:
            summary["error"] = error
        write_json_atomic(self.path / layout.SUMMARY, summary)

    def close(self) -> None:
        for f in (self._metrics, self._events, self._spectra):
            try:
                f.close()  # flushes: on a full disk the buffered tail is lost, the file's lines stay whole
            except OSError:
                pass
