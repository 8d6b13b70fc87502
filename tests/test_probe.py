"""The Fourier probe on real models, and the Fourier keys in the engine's rows and the run directory."""

from __future__ import annotations

import pytest

import json
from pathlib import Path

import numpy as np
import torch

from grokmon.config import Config, ModelConfig, TaskConfig
from grokmon.data import make_dataset
from grokmon.engine import Engine
from grokmon.events import Alert, Evaluation, Event
from grokmon.metrics.probe import METRIC_KEYS, FourierProbe
from grokmon.model import Transformer
from grokmon.rundir.writer import RunDir
from grokmon.rundir.readers import checkpoints, load_checkpoint, read_jsonl
from grokmon.metrics.runs import run_events

pytestmark = pytest.mark.engine

SMALL = dict(d_model=64, n_heads=4, d_head=16, d_mlp=128)


def _probe_init(op: str, p: int, seed: int, **model) -> dict:
    ds = make_dataset(TaskConfig(op=op, p=p, seed=seed))
    m = Transformer(ModelConfig(seed=seed, **{**SMALL, **model}), p)
    probe = FourierProbe(op, p, ds.labels, ds.train_mask, n_perm=500, seed=seed)
    cache: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        logits = m(ds.tokens, cache)
    return probe.measure(dict(m.named_parameters()), logits, cache, step=0).metrics


def test_fsd_at_random_init_is_calibrated() -> None:
    """at init the output side is independent of the input side, so p is ~uniform over seeds."""
    results = [_probe_init("add", 31, seed) for seed in range(20)]
    p_values = [r["fsd_p"] for r in results]
    assert sum(p < 0.05 for p in p_values) <= 4
    assert abs(np.mean([r["fsd"] for r in results])) < 0.15
    assert max(p_values) > 0.5  # not everything crammed near 0


def test_probe_components_follow_the_residual_stream() -> None:
    ds = make_dataset(TaskConfig(op="mul", p=13))
    m = Transformer(ModelConfig(n_layers=2, **SMALL), 13)
    cache: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        logits = m(ds.tokens, cache)
    probe = FourierProbe("mul", 13, ds.labels, ds.train_mask, n_perm=50)
    result = probe.measure(dict(m.named_parameters()), logits, cache, step=0)
    assert list(result.spectra) == ["embed", "blocks.0.attn_out", "blocks.0.mlp_out",
                                    "blocks.1.attn_out", "blocks.1.mlp_out", "unembed"]
    assert all(len(v) == 6 for v in result.spectra.values())  # q = p - 1 = 12 -> K = 6 (Nyquist included)
    assert set(result.metrics) == set(METRIC_KEYS) - {"phase"}
    assert len(result.metrics["top_freqs"]) == 5
    assert abs(sum(s for _, s in result.metrics["top_freqs"]) - 1.0) < 1.0  # shares, not energies


def test_attention_only_model_has_no_neuron_logit_map() -> None:
    metrics = _probe_init("add", 13, 0, attn_only=True)
    assert metrics["wl_top_freqs"] is None and metrics["gini_wl"] is None
    assert metrics["fsd"] is not None


def test_rows_carry_fourier_keys_and_resume_keeps_the_detector(tiny: Config, tmp_path: Path) -> None:
    cfg = tiny.replace("metrics", metrics_every=2, n_perm=200).replace("train", max_steps=200)
    full = RunDir(tmp_path / "full")
    events: list[Event] = []
    Engine(cfg, sinks=[full, events.append], checkpointer=full).run()
    full.close()
    rows = read_jsonl(tmp_path / "full" / "metrics.jsonl")
    assert all(list(r)[8:] == list(METRIC_KEYS) for r in rows)
    probed = [r["step"] for r in rows if r["fsd"] is not None]
    assert probed == list(range(0, 201, 40))
    assert all(r["phase"] in ("memorisation", "circuit formation", "cleanup", "generalised") for r in rows)
    spectra = read_jsonl(tmp_path / "full" / "spectra.jsonl")
    assert [s["step"] for s in spectra] == probed
    assert [e.step for e in events if isinstance(e, Evaluation) and e.spectra] == probed

    # Stop at 100 and resume: rows (FSD and p-values included) and the online detector state match.
    part = RunDir(tmp_path / "part")
    Engine(cfg.replace("train", max_steps=100), sinks=[part], checkpointer=part).run()
    part.close()
    state = load_checkpoint(checkpoints(tmp_path / "part")[100])
    assert len(state.fsd_history) == 3
    more = RunDir(tmp_path / "part", resume_step=100)
    Engine(cfg, sinks=[more], checkpointer=more, resume_state=state).run()
    more.close()
    strip = lambda d: [{k: v for k, v in r.items() if k != "wall_s"} for r in read_jsonl(d / "metrics.jsonl")]  # noqa: E731
    assert strip(tmp_path / "part") == strip(tmp_path / "full")
    assert read_jsonl(tmp_path / "part" / "spectra.jsonl") == spectra
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    for key in ("t_grok_50", "t_grok", "t_grok_99", "t_fsd", "t_fsd_online", "t_excluded", "lead"):
        assert key in summary


def test_online_detector_firing_is_an_alert_and_matches_the_replay() -> None:
    rows = []
    for i in range(30):  # FSD rises to a plateau at step 1000 with p < alpha
        fsd = min(1.0, i / 10) * 0.9
        rows.append({"step": i * 100, "val_acc": 0.1, "train_acc": 1.0, "fsd": fsd, "fsd_p": 0.001,
                     "excluded_loss": 0.01})
    ev = run_events(rows)
    assert ev["t_fsd_online"] is not None and ev["t_fsd_online"] >= 1000
    assert ev["t_grok"] is None and ev["lead"] is None


def test_engine_emits_the_detector_alert(tiny: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's FSD is scripted to rise to a plateau (p tiny), so the online detector must fire, once,
    and the engine must say so with one alert at that step, the same step a replay of its rows finds."""
    cfg = tiny.replace("metrics", metrics_every=1, n_perm=100).replace("train", max_steps=400, eval_every=10)
    events: list[Event] = []
    engine = Engine(cfg, sinks=[events.append])
    original = engine.probe.measure

    def scripted(params, logits, cache, step):  # noqa: ANN001, ANN202
        result = original(params, logits, cache, step)
        result.metrics.update(fsd=min(1.0, step / 200), fsd_p=0.001)
        return result

    monkeypatch.setattr(engine.probe, "measure", scripted)
    engine.run()
    alerts = [e for e in events if isinstance(e, Alert) and e.kind == "fsd_ceiling"]
    rows = [e.record() for e in events if isinstance(e, Evaluation)]
    assert engine.t_fsd_online is not None and 200 < engine.t_fsd_online <= 320  # the plateau is flat by then
    assert engine.t_fsd_online == run_events(rows)["t_fsd_online"]
    assert [a.step for a in alerts] == [engine.t_fsd_online]
