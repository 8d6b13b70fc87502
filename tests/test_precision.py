"""train.precision: fp32 (default), bf16 (matrix products under autocast, fp32 master weights, optimiser state,
loss and metrics) and fp64 (all in float64); kept on resume, refused if changed there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from grokmon.config import Config, apply_overrides
from grokmon.engine import Engine
from grokmon.errors import ConfigError
from grokmon.events import Evaluation, Event
from grokmon.rundir import layout
from grokmon.rundir.readers import read_rows
from grokmon.session import RunSession

from conftest import run_cli

pytestmark = pytest.mark.engine


def _train(cfg: Config, steps: int) -> tuple[Engine, list[Event]]:
    events: list[Event] = []
    engine = Engine(cfg.replace("train", max_steps=steps, eval_every=steps, stop_after_grok=-1),
                    sinks=[events.append])
    result = engine.run()
    assert str(result.status) == "completed", result
    return engine, events


def _row_keys(events: list[Event]) -> list[list[str]]:
    return [sorted(e.record()) for e in events if isinstance(e, Evaluation)]


class MatmulDtypes(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the dtype of every matrix product dispatched while it is active."""

    PRODUCTS = {"mm", "addmm", "bmm", "baddbmm"}

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.overloadpacket.__name__ in self.PRODUCTS:
            self.dtypes.append(args[-1].dtype)
        return func(*args, **(kwargs or {}))


def test_precision_is_validated_in_one_line(tiny: Config) -> None:
    with pytest.raises(ConfigError, match=r"train\.precision: expected one of 'fp32', 'bf16', 'fp64', got 'fp16'"):
        apply_overrides(tiny, ["train.precision=fp16"])
    assert tiny.train.precision == "fp32" and tiny.train.tf32 is False  # the defaults


def test_bf16_runs_the_products_in_bf16_and_keeps_everything_else_fp32(tiny: Config) -> None:
    engine, events = _train(tiny.replace("train", precision="bf16"), 3)
    with MatmulDtypes() as seen:
        engine.train_step()
    assert seen.dtypes and set(seen.dtypes) == {torch.bfloat16}  # forward and backward products alike
    assert {p.dtype for p in engine.model.parameters()} == {torch.float32}  # master weights
    moments = [v for state in engine.optimizer.state.values() for k, v in state.items() if k != "step"]
    assert moments and {m.dtype for m in moments} == {torch.float32}
    with MatmulDtypes() as seen:
        engine.evaluate()  # rows and the probe: fp32, whatever the training precision
    assert seen.dtypes and torch.bfloat16 not in seen.dtypes


def test_bf16_trains_close_to_fp32_but_not_equal(tiny: Config) -> None:
    _, fp32 = _train(tiny, 30)
    _, bf16 = _train(tiny.replace("train", precision="bf16"), 30)
    loss32, loss16 = ([e.train_loss for e in ev if isinstance(e, Evaluation)][-1] for ev in (fp32, bf16))
    assert loss16 != loss32  # the autocast is on ...
    assert abs(loss16 - loss32) / loss32 < 0.05  # ... and the run is the same run
    assert _row_keys(bf16) == _row_keys(fp32)  # metrics rows carry nothing new


def test_fp64_trains_in_float64(tiny: Config) -> None:
    engine, events = _train(tiny.replace("train", precision="fp64"), 5)
    assert {p.dtype for p in engine.model.parameters()} == {torch.float64}
    moments = [v for state in engine.optimizer.state.values() for k, v in state.items() if k != "step"]
    assert {m.dtype for m in moments} == {torch.float64}
    with MatmulDtypes() as seen:
        engine.train_step()
    assert seen.dtypes and set(seen.dtypes) == {torch.float64}
    _, fp32 = _train(tiny, 5)
    assert _row_keys(events) == _row_keys(fp32)


def test_resume_keeps_the_precision_and_refuses_a_change(tiny: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunSession.new(tiny.replace("train", max_steps=20, precision="bf16"), run).run(handle_signals=False)
    assert json.loads((run / layout.CONFIG).read_text())["train"]["precision"] == "bf16"
    with pytest.raises(ConfigError, match=r"train\.precision: expected the run's own precision on --resume "
                                          r"\('bf16'\), got 'fp32'"):
        RunSession.resume(run, ["train.precision=fp32"], max_steps=40)
    session = RunSession.resume(run, max_steps=40)
    assert session.cfg.train.precision == "bf16"
    session.run(handle_signals=False)
    assert [r["step"] for r in read_rows(run)][-1] == 40


@pytest.mark.parametrize("args", [("--set", "train.precision=fp16"), ("--set", "train.tf32=maybe")])
def test_cli_bad_precision_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", "quick", "--headless", "--out", str(out), *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert args[1].split("=")[0] in proc.stderr
    assert not out.exists()  # nothing written for a run that never started
