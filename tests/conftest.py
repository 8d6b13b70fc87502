"""Shared fixtures: a tiny config that trains in a second, a list sink, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grokmon.config import Config, apply_overrides, load_config

# One intra-op thread: the suite shares a 2-core machine with other work, and two torch processes
# that each spin 2 OpenMP threads on 2 cores slow each other down ten-fold.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY = [
    "task.p=23", "task.frac_train=0.5",
    "model.d_model=32", "model.n_heads=4", "model.d_head=8", "model.d_mlp=64",
    "optim.lr=3e-3", "train.max_steps=120", "train.eval_every=20", "train.checkpoint_every=40",
    "metrics.metrics_every=0",
]

TINY_TOML = """
description = "tiny test profile"
[task]
p = 23
frac_train = 0.5
[model]
d_model = 32
n_heads = 4
d_head = 8
d_mlp = 64
[optim]
lr = 3e-3
[train]
max_steps = {max_steps}
eval_every = 20
checkpoint_every = 40
[metrics]
metrics_every = 0
"""


@pytest.fixture
def tiny() -> Config:
    return apply_overrides(load_config("default"), TINY)


def write_tiny_profile(directory: Path, max_steps: int = 120) -> Path:
    path = directory / "tiny.toml"
    path.write_text(TINY_TOML.format(max_steps=max_steps))
    return path


@pytest.fixture
def tiny_profile(tmp_path: Path) -> Path:
    return write_tiny_profile(tmp_path)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`grokmon ARGS` in a fresh interpreter, stdout not a terminal, as a batch job would run it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "grokmon", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)



TIERS = ("unit", "engine", "integration", "slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test sits in exactly one tier, so `pytest -m "not integration and not slow"` means what it says."""
    bad = [f"{item.nodeid}: {tiers or 'no tier'}" for item in items
           if len(tiers := [t for t in TIERS if item.get_closest_marker(t)]) != 1]
    if bad:
        raise pytest.UsageError("tests need exactly one tier mark (unit, engine, integration, slow):\n  "
                                + "\n  ".join(bad[:20]))
