"""The run directory's layout: every file name, in one place (README "The run directory").

Names only; no I/O. Bump FORMAT_VERSION when a file's meaning or a key changes in a way readers must know.
"""

from __future__ import annotations

import re
from pathlib import Path

FORMAT_VERSION = 1  # written to run.json as "format"

CONFIG = "config.json"  # the run's Config, nothing else (loads strictly)
META = "run.json"  # run metadata: format, grokmon / torch versions, device, sizes, starts and resumes
METRICS = "metrics.jsonl"  # one row per evaluation (records.METRIC_ROW_KEYS)
SPECTRA = "spectra.jsonl"  # per probed evaluation: the FSD components' energy per frequency
EVENTS = "events.jsonl"  # start / resume, interventions, alerts, checkpoints, finish / failed
SUMMARY = "summary.json"  # written when the run ends (records.SUMMARY_KEYS)
ERROR_LOG = "error.log"  # the traceback of a failed run
CONTROL = "control.jsonl"  # commands from other processes (grokmon watch); the run only reads it
LOCK = ".lock"  # flock'ed by the one process writing the run (rundir.lock)
OWNER = "owner.json"  # that process: pid, host, started, heartbeat
CHECKPOINTS = "checkpoints"  # step_NNNNNNNN.pt: full training states
HISTORY_FILES = (METRICS, SPECTRA, EVENTS)  # the append-only logs (a fork branch starts with its parent's)

_CKPT = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def checkpoint_step(name: str) -> int | None:
    """The step of a checkpoint file name, or None for anything else (temporary files included)."""
    m = _CKPT.match(name)
    return int(m.group(1)) if m else None


def is_run_dir(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()
