"""Exact resume on a CUDA device: a run stopped at a checkpoint and resumed on the GPU gives the same rows as
the run that never stopped, and its training state carries the CUDA generator.

Skipped where torch sees no CUDA GPU. GROKMON_TEST_DEVICE=cpu runs the same test on the CPU (to check the
test itself on a machine without a GPU); GROKMON_TEST_DEVICE=cuda:N picks another GPU.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from grokmon.config import Config
from grokmon.engine import Engine
from grokmon.events import Evaluation, Event

pytestmark = [pytest.mark.gpu, pytest.mark.engine]  # engine: the tier; gpu: needs CUDA

DEVICE = os.environ.get("GROKMON_TEST_DEVICE", "cuda")
ON_CUDA = DEVICE.startswith("cuda")

requires_device = pytest.mark.skipif(
    ON_CUDA and not torch.cuda.is_available(),
    reason="needs a CUDA GPU: torch.cuda.is_available() is False "
           "(set GROKMON_TEST_DEVICE=cpu to run this test on the CPU)",
)


class MemoryCheckpointer:
    """Keeps every saved training state in a dict by step; a deep copy, as a file would be a snapshot."""

    def __init__(self) -> None:
        self.states: dict[int, Any] = {}

    def save(self, step: int, state: Any) -> str:
        self.states[step] = copy.deepcopy(state)
        return f"memory:{step}"


def _rng(state: Any) -> dict[str, Any]:
    """The generator states of a training state (a TrainingState, or the dict an older engine returned)."""
    return dict(state.rng if hasattr(state, "rng") else state["rng"])


@pytest.fixture
def deterministic_kernels() -> Iterator[None]:
    """Ask torch for deterministic kernels while the test runs, so that two runs of the same steps agree bit
    for bit on a GPU too (atomics in a backward pass could otherwise reorder sums): a mismatch then means
    the resume lost something, not that a kernel is nondeterministic."""
    old_env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    old_mode = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # what torch needs for deterministic cuBLAS
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_mode, warn_only=old_warn)
        if old_env is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = old_env


def _run(cfg: Config, checkpointer: MemoryCheckpointer | None = None,
         resume_state: Any = None) -> tuple[Engine, list[dict[str, Any]]]:
    events: list[Event] = []
    engine = Engine(cfg, sinks=[events.append], checkpointer=checkpointer, resume_state=resume_state)
    if resume_state is not None:  # load_state is the constructor's last act: the generators are restored
        rng = _rng(resume_state)
        assert torch.equal(torch.get_rng_state(), rng["torch"])
        if ON_CUDA:
            assert torch.equal(torch.cuda.get_rng_state(engine.device), rng["cuda"])
    result = engine.run()
    assert str(result.status) == "completed", result
    rows = [{k: v for k, v in e.record().items() if k != "wall_s"} for e in events if isinstance(e, Evaluation)]
    return engine, rows


@requires_device
def test_resume_on_the_device_is_exact(tiny: Config, deterministic_kernels: None) -> None:
    """Train 160 steps on the device with minibatches (so the batch generator matters) and checkpoints at
    80 and 160; resume a fresh engine from the step-80 state: its rows (steps 80..160, the step-80
    evaluation repeated) equal the uninterrupted run's bit for bit, and on CUDA the state holds the CUDA
    generator, which the resumed engine has restored before it trains."""
    cfg = (tiny.replace("train", device=DEVICE, max_steps=160, eval_every=20, checkpoint_every=80, batch_size=64)
           .replace("metrics", metrics_every=0))
    ckpt = MemoryCheckpointer()
    engine, full = _run(cfg, ckpt)
    assert engine.device.type == torch.device(DEVICE).type
    assert sorted(ckpt.states) == [80, 160]
    middle = ckpt.states[80]
    rng = _rng(middle)
    assert {"torch", "batch"} <= set(rng)
    if ON_CUDA:
        assert "cuda" in rng and isinstance(rng["cuda"], torch.Tensor) and rng["cuda"].numel() > 0
        assert torch.cuda.get_rng_state(engine.device).dtype == rng["cuda"].dtype

    _, resumed = _run(cfg, resume_state=middle)
    assert [r["step"] for r in resumed] == [80, 100, 120, 140, 160]
    assert resumed == [r for r in full if r["step"] >= 80]
    assert full[-1]["train_loss"] != full[0]["train_loss"]  # it trained: the comparison is not of constants


@requires_device
def test_training_steps_do_not_wait_for_the_device(tiny: Config) -> None:
    """Between evaluations a step never syncs the host with the GPU: torch's sync debug mode turns any
    synchronising call (an .item(), a copy to the host, a data-dependent shape) into an error."""
    if not ON_CUDA:
        pytest.skip("the sync debug mode is CUDA's; on the CPU there is no device to wait for")
    for precision, batch_size in (("fp32", 0), ("bf16", 0), ("fp32", 64)):  # 64: minibatches drawn on the host
        engine = Engine(tiny.replace("train", device=DEVICE, precision=precision, batch_size=batch_size)
                        .replace("metrics", metrics_every=0))
        for _ in range(3):  # warm-up: first-call allocations and cuBLAS handles may sync
            engine.train_step()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(10):
                engine.train_step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert engine.step == 13


@requires_device
def test_bf16_and_tf32_on_the_device(tiny: Config) -> None:
    """bf16 trains with fp32 master weights on the device; train.tf32 sets torch's TF32 switches on CUDA."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        engine = Engine(tiny.replace("train", device=DEVICE, precision="bf16", tf32=True, max_steps=20,
                                     eval_every=10).replace("metrics", metrics_every=0))
        if ON_CUDA:
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        result = engine.run()
        assert str(result.status) == "completed", result
        assert {p.dtype for p in engine.model.parameters()} == {torch.float32}
        assert all(torch.isfinite(p).all() for p in engine.model.parameters())
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@requires_device
def test_the_training_benchmark_runs_on_the_device() -> None:
    """benchmarks/bench_train.py on the device, one short round: it prints each precision's fraction of the
    matrix-product limit (the numbers themselves are for a person to read, not for a test)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"
    proc = subprocess.run([sys.executable, str(script), "--profile", "quick", "--device", DEVICE, "--rounds", "1",
                           "--steps", "2"], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "fp32" in proc.stdout and "bf16" in proc.stdout and "limit" in proc.stdout
