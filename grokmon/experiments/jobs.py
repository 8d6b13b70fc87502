"""Headless runs as jobs: one run directory each, run in this process, in parallel local processes, or as
Ray tasks. Shared by `grokmon fork` and `grokmon sweep`.

A job is plain data (a config dict, a run directory, an optional starting state) so it crosses process and
machine boundaries. Re-running the same jobs skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from grokmon.errors import ConfigError
from grokmon.rundir import layout
from grokmon.rundir.lock import RunBusy
from grokmon.rundir.readers import last_row
from grokmon.rundir.readers import read_summary as rundir_summary
from grokmon.rundir.records import DONE

DEAD_GRACE_S = 5.0  # how long a worker that exited may take to deliver its result
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_early_stop: list[int] = []  # stop signals a worker process got before its run could take them


@dataclass(frozen=True)
class RunJob:
    name: str
    run_dir: str
    config: dict[str, Any]  # Config.to_dict()
    start_state: str | None = None  # a full training state to start from (a fork point), else from scratch
    start_commands: tuple[tuple[str, float, str], ...] = ()  # (kind, value, source), applied before step 1
    history_from: str | None = None  # a run directory whose rows before the start state's step are copied
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JobResult:
    name: str
    run_dir: str
    status: str  # completed, stopped, interrupted, diverged, failed, skipped-done
    t_grok: int | None = None
    wall_s: float = 0.0
    error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    return rundir_summary(run_dir)


def skipped_done(job: "RunJob") -> "JobResult":
    """The result of a job whose run directory already finished: read from its summary, nothing trained."""
    summary = read_summary(Path(job.run_dir)) or {}
    return JobResult(job.name, job.run_dir, "skipped-done", summary.get("t_grok"), 0.0, summary=summary)


def final_status(result_status: str | None, run_dir: Path) -> str:
    """A run's status for a summary table: this invocation's result, or, for a run it skipped or never
    reached, what the run directory's summary.json says."""
    if result_status in (None, "skipped-done"):
        return (read_summary(run_dir) or {}).get("status", "not-started")
    return result_status


def is_done(run_dir: Path) -> bool:
    """A run that training again would not change: summary.json says completed (grokked or reached its step
    limit) or diverged (rundir.records.DONE)."""
    summary = read_summary(run_dir)
    return summary is not None and summary.get("status") in DONE


# ---------------------------------------------------------------------------------------------
# one job, in this process


def run_job(job: RunJob, *, handle_signals: bool = True) -> JobResult:
    """Run (or finish) one job's run directory through a RunSession, which holds the directory's writer lock:
    two `grokmon fork`/`sweep` on one directory share the work instead of training a run twice. The first
    SIGINT/SIGTERM/SIGHUP stops it cleanly at a step boundary, a second at once (the session's policy)."""
    run_dir = Path(job.run_dir)
    if is_done(run_dir):
        return skipped_done(job)
    return _run_locked(job, run_dir, handle_signals)


def _run_locked(job: RunJob, run_dir: Path, handle_signals: bool) -> JobResult:
    import torch

    from grokmon.config import from_dict
    from grokmon.events import Command
    from grokmon.session import RunSession

    if job.threads > 0:
        torch.set_num_threads(job.threads)
    cfg = from_dict(job.config, source=f"{job.name} config", profile=str(job.config.get("profile", "custom")))
    try:
        session = RunSession.branch(
            cfg, run_dir, start=Path(job.start_state) if job.start_state else None,
            commands=[Command(kind, value, source=source) for kind, value, source in job.start_commands],
            history_from=Path(job.history_from) if job.history_from else None)
    except RunBusy as e:
        return JobResult(job.name, job.run_dir, "busy", error=str(e))
    if session.finished_before:  # finished by another process before we took the lock
        session.release()
        return skipped_done(job)
    session.open()
    if _early_stop:  # a stop signal reached this worker while it was starting: stop at the first boundary
        session.engine.request_stop(signal.Signals(_early_stop[0]).name)
    t0 = time.perf_counter()
    result = session.run(handle_signals=handle_signals)
    return JobResult(job.name, job.run_dir, result.status, result.t_grok, time.perf_counter() - t0,
                     error=result.error, summary=read_summary(run_dir) or {})


# ---------------------------------------------------------------------------------------------
# many jobs


def run_jobs(jobs: Sequence[RunJob], *, n_jobs: int = 1, backend: str = "local", address: str | None = None,
             on_done: Callable[[JobResult], None] | None = None,
             on_tick: Callable[[list[RunJob]], None] | None = None, tick_s: float = 30.0) -> list[JobResult]:
    """Run every job; finished run directories are skipped. Results come back in the jobs' order.
    `on_tick` gets the running jobs every `tick_s` seconds (local backend)."""
    results: list[JobResult] = []
    todo = []
    for job in jobs:
        if is_done(Path(job.run_dir)):
            results.append(skipped_done(job))
            if on_done:
                on_done(results[-1])
        else:
            todo.append(job)
    if todo and backend == "ray":
        results += _run_ray(todo, address, on_done)
    elif todo:
        results += _run_processes(todo, max(1, n_jobs), on_done, on_tick, tick_s)
    by_name = {r.name: r for r in results}
    return [by_name.get(j.name) or JobResult(j.name, j.run_dir, "not-started") for j in jobs]


def running_line(jobs: Sequence[RunJob]) -> str:
    """'running: wd_1 step 2400 val_acc 0.31, wd_2 step 2380 val_acc 0.52' from each run's last row."""
    parts = []
    for job in jobs:
        row = last_row(Path(job.run_dir) / layout.METRICS)
        if row is None:
            parts.append(f"{job.name} starting")
        else:
            parts.append(f"{job.name} step {row.get('step')} val_acc {row.get('val_acc', float('nan')):.3f}")
    return "running: " + ", ".join(parts)


def _worker(job_dict: dict[str, Any], out: Any) -> None:
    """Entry point of one spawned process: the job's result (or its crash) goes back on the queue."""
    # Its own process group: the terminal's Ctrl-C reaches the parent only, which forwards one SIGTERM per
    # signal it gets (so one Ctrl-C is one signal here, not two).
    os.setpgid(0, 0)
    # Until the run installs its own handlers, and after it restores these, a stop signal is only noted:
    # the default action would kill the process before its result (or its checkpoint) is written.
    for s in _STOP_SIGNALS:
        signal.signal(s, lambda signum, frame: _early_stop.append(signum))
    job = RunJob(**{**job_dict, "start_commands": tuple(tuple(c) for c in job_dict["start_commands"])})
    try:
        out.put(asdict(run_job(job)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which owns the terminal
        out.put(asdict(JobResult(job.name, job.run_dir, "failed", error=f"{type(exc).__name__}: {exc}")))


def _run_processes(jobs: Sequence[RunJob], n_jobs: int, on_done: Callable[[JobResult], None] | None,
                   on_tick: Callable[[list[RunJob]], None] | None, tick_s: float) -> list[JobResult]:
    """At most n_jobs spawned processes at a time (also for one: the parent stays free to report). A stop
    signal is forwarded to every running job (each stops cleanly with a checkpoint) and no new job starts;
    a second is forwarded too (each stops at once), a third kills them."""
    ctx = mp.get_context("spawn")  # fork() after torch has started its thread pools can hang
    out = ctx.Queue()
    pending = list(jobs)
    running: dict[str, Any] = {}
    results: list[JobResult] = []
    stopping: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopping.append(signum)
        for proc in running.values():
            try:  # each forward is one signal to the worker: the first stops it cleanly, a second at once
                if len(stopping) > 2:
                    proc.kill()
                else:
                    os.kill(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, OSError):
                pass

    previous = {s: signal.signal(s, on_signal) for s in _STOP_SIGNALS}
    by_name = {j.name: j for j in jobs}
    dead_since: dict[str, float] = {}
    last_tick = time.monotonic()
    try:
        while pending or running:
            if on_tick and running and time.monotonic() - last_tick >= tick_s:
                last_tick = time.monotonic()
                on_tick([by_name[n] for n in running])
            while pending and len(running) < n_jobs and not stopping:
                job = pending.pop(0)
                proc = ctx.Process(target=_worker, args=(job.to_dict(), out), name=f"grokmon-{job.name}")
                proc.start()
                running[job.name] = proc
            try:
                got = JobResult(**out.get(timeout=0.5))
            except queue.Empty:
                got = None
            if got is not None and got.name in running:
                running.pop(got.name).join()
                dead_since.pop(got.name, None)
                results.append(got)
                if on_done:
                    on_done(got)
                continue
            for name, proc in list(running.items()):
                if proc.is_alive():
                    continue
                # A result may still be in the pipe for a moment after its process has exited.
                first = dead_since.setdefault(name, time.monotonic())
                if time.monotonic() - first > DEAD_GRACE_S:  # killed, or crashed in C code
                    running.pop(name)
                    results.append(JobResult(name, by_name[name].run_dir, "failed",
                                             error=f"the process exited ({proc.exitcode}) without a result"))
                    if on_done:
                        on_done(results[-1])
            if stopping and not running:
                break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return results


# ---------------------------------------------------------------------------------------------
# Ray


def _ray_task(job_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One run on a Ray worker, in a scratch directory there; its files travel back to the driver (the
    logs and the last checkpoint), so the cluster needs no shared filesystem."""
    scratch = Path(tempfile.mkdtemp(prefix="grokmon-ray-"))
    try:
        job = RunJob(**{**job_dict, "run_dir": str(scratch / "run"),
                        "start_commands": tuple(tuple(c) for c in job_dict["start_commands"])})
        result = asdict(run_job(job, handle_signals=False))
        result["run_dir"] = job_dict["run_dir"]
        files: dict[str, bytes] = {}
        root = scratch / "run"
        ckpts = sorted((root / "checkpoints").glob("step_*.pt"))
        for path in root.rglob("*"):
            if path.is_file() and path.name not in (layout.LOCK, layout.OWNER) and (path.parent.name != "checkpoints" or path == ckpts[-1]):
                files[str(path.relative_to(root))] = path.read_bytes()
        return result, files
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_ray(jobs: Sequence[RunJob], address: str | None,
             on_done: Callable[[JobResult], None] | None) -> list[JobResult]:
    try:
        import ray
    except ImportError:
        raise ConfigError("needs Ray: pip install 'grokmon[ray]'", source="--backend ray") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot reach a Ray cluster at {address or 'RAY_ADDRESS / a new local one'}: {e}",
                              source="--address") from None
    results: list[JobResult] = []
    remote = ray.remote(num_cpus=1)(_ray_task)
    refs = {remote.options(num_cpus=max(1, j.threads)).remote(j.to_dict()): j for j in jobs}
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            job = refs.pop(ready[0])
            try:
                result_dict, files = ray.get(ready[0])
            except Exception as exc:  # a task that raised or whose worker died
                got = JobResult(job.name, job.run_dir, "failed", error=f"{type(exc).__name__}: {exc}")
            else:
                _write_files(Path(job.run_dir), files)
                got = JobResult(**result_dict)
            results.append(got)
            if on_done:
                on_done(got)
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    return results


def _write_files(run_dir: Path, files: dict[str, bytes]) -> None:
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted local attempt: the Ray run replaces it whole
    for rel, data in files.items():
        path = run_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
