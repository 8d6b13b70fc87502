"""The offline excluded loss (grokmon.offline): the final checkpoint's key frequencies at every probed evaluation.

A planted run: real checkpoints whose W_U carries frequency 3 early and 3 and 7 later (so the probe's key
frequencies change during training), and logits planted per step. With the final keys {3, 7} the excluded
loss is flat until step 1000 and jumps there; with the online keys (3 alone before step 600) the logged series
jumps at 600. The expectations are computed here with numpy from the definitions, not with grokmon's code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from grokmon.config import Config
from grokmon.data import make_dataset
from grokmon.errors import ConfigError
from grokmon.experiments.jobs import RunJob
from grokmon.experiments.sweep import collect_sweep, sweep_markdown
from grokmon.metrics.runs import run_events, why_missing
from grokmon.model import Transformer
from grokmon.offline import excluded_record, offline_excluded
from grokmon.report import report_text, run_report
from grokmon.rundir import layout
from grokmon.rundir.records import clean_summary, dumps
from grokmon.trainstate import TrainingState

pytestmark = pytest.mark.unit

STEPS = list(range(0, 2100, 100))
T_PLANT = 1000  # the final-key excluded loss jumps here
T_ONLINE = 600  # the online keys gain frequency 7 here: the logged series jumps here
FINAL_KEYS = (3, 7)
AMP = 3.0  # amplitude of each key frequency's cos(w_k (a + b - c)) in the logits


def online_keys(step: int) -> tuple[int, ...]:
    return (3,) if step < T_ONLINE else FINAL_KEYS


def memo(step: int) -> float:
    """The memorising logit on each train pair's answer: large until T_PLANT, small after (cleanup)."""
    return 5.0 if step < T_PLANT else 1.0


def planted_logits(cfg: Config, step: int) -> np.ndarray:  # [n_pairs, p] float64
    data = make_dataset(cfg.task)
    p = cfg.task.p
    a, b = data.tokens[:, 0].numpy(), data.tokens[:, 1].numpy()
    c = np.arange(p)
    L = np.zeros((len(a), p))
    for k in FINAL_KEYS:  # the circuit, at both key frequencies from the start
        L += AMP * np.cos(2 * np.pi * k * (a[:, None] + b[:, None] - c[None, :]) / p)
    train = data.train_idx.numpy()
    L[train, data.labels.numpy()[train]] += memo(step)
    return L


def excluded_by_hand(cfg: Config, L: np.ndarray, keys: tuple[int, ...]) -> float:
    """The definition with numpy: remove from every class column its least-squares fit on cos / sin(w_k (a+b))
    over all pairs, then the mean cross-entropy on the train pairs."""
    data = make_dataset(cfg.task)
    p = cfg.task.p
    s = (data.tokens[:, 0] + data.tokens[:, 1]).numpy()
    D = np.column_stack([f(2 * np.pi * k * s / p) for k in keys for f in (np.cos, np.sin)])  # [n_pairs, 2|keys|]
    coef, *_ = np.linalg.lstsq(D, L, rcond=None)
    rest = L - D @ coef
    train, y = data.train_idx.numpy(), data.labels.numpy()
    z = rest[train] - rest[train].max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(train)), y[train]].mean())


def w_u_with(cfg: Config, keys: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:  # [d_model, p]
    """An unembedding whose columns vary over the answer c only at `keys`: W_L = W_out @ W_U then has all its
    spectrum there, so the probe's key frequencies are exactly `keys`."""
    p, d = cfg.task.p, cfg.model.d_model
    c = torch.arange(p, dtype=torch.float64)
    W = torch.zeros(d, p, dtype=torch.float64)
    for k in keys:
        u, v = torch.randn(d, 1, generator=gen, dtype=torch.float64), torch.randn(d, 1, generator=gen,
                                                                                   dtype=torch.float64)
        W += u * torch.cos(2 * np.pi * k * c / p) + v * torch.sin(2 * np.pi * k * c / p)
    return W.float()


def plant_run(run: Path, cfg: Config, checkpoint_steps: list[int], monkeypatch: pytest.MonkeyPatch,
              summary: dict[str, Any] | None = None) -> dict[int, float]:
    """Write the planted run directory; the model's logits at a checkpoint are the planted ones for its step
    (W_pos[0, 0] holds the step). Returns the final-key excluded loss per step, by hand."""
    run.mkdir(parents=True)
    (run / layout.CONFIG).write_text(json.dumps(cfg.to_dict()))
    ck = run / layout.CHECKPOINTS
    ck.mkdir()
    gen = torch.Generator().manual_seed(1)
    model = Transformer(cfg.model, cfg.task.p)
    for step in checkpoint_steps:
        params = {k: v.clone() for k, v in model.state_dict().items()}
        params["W_U"] = w_u_with(cfg, online_keys(step), gen)
        params["W_pos"][0, 0] = float(step)
        state = TrainingState(step=step, wall_s=float(step), model=params, optimizer={}, base_lr=1e-3,
                              rng={"torch": torch.get_rng_state(), "batch": torch.Generator().get_state()})
        torch.save(state.to_dict(), ck / layout.checkpoint_name(step))
    rows = []
    for step in STEPS:
        L = planted_logits(cfg, step)
        rows.append({"step": step, "train_loss": 0.1, "train_acc": 0.3 if step == 0 else 1.0, "val_loss": 3.0,
                     "val_acc": 0.05, "fsd": 0.5, "fsd_p": 0.5, "key_freqs": list(online_keys(step)),
                     "excluded_loss": excluded_by_hand(cfg, L, online_keys(step))})
    (run / layout.METRICS).write_text("".join(dumps(r) + "\n" for r in rows))
    if summary is not None:
        (run / layout.SUMMARY).write_text(json.dumps(summary))
    table = {s: torch.from_numpy(planted_logits(cfg, s)) for s in STEPS}

    def planted_forward(m: Transformer) -> Callable[[torch.Tensor], torch.Tensor]:  # the kernel's place
        return lambda tokens: table[int(m.W_pos[0, 0].item())]  # the loaded step's planted logits

    monkeypatch.setattr("grokmon.offline.train_forward", planted_forward)
    return {s: excluded_by_hand(cfg, planted_logits(cfg, s), FINAL_KEYS) for s in STEPS}


def test_t_excluded_uses_the_final_keys_and_finds_the_planted_rise(tiny: Config, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    by_hand = plant_run(tmp_path / "run", tiny, STEPS[1:], monkeypatch)  # a checkpoint at every evaluation but 0
    # The plant, checked by hand: flat before T_PLANT, more than twice that level from it on; the logged series
    # (online keys) is far lower before T_ONLINE and more than twice its minimum from T_ONLINE on.
    before = [by_hand[s] for s in STEPS[1:] if s < T_PLANT]
    after = [by_hand[s] for s in STEPS if s >= T_PLANT]
    assert max(before) - min(before) < 1e-12 and min(after) > 2 * max(before) + 0.01
    logged = {s: excluded_by_hand(tiny, planted_logits(tiny, s), online_keys(s)) for s in STEPS}
    low = max(logged[s] for s in STEPS[1:] if s < T_ONLINE)
    assert all(logged[s] > 2 * low + 0.01 for s in STEPS if s >= T_ONLINE)

    res = offline_excluded(tmp_path / "run")
    assert res.key_freqs == FINAL_KEYS and res.final_step == STEPS[-1]
    assert res.steps == tuple(STEPS[1:]) and res.n_checkpoints == 20 and res.n_probed == 21 and res.n_analysed == 20
    np.testing.assert_allclose(res.excluded_loss, [by_hand[s] for s in STEPS[1:]], rtol=1e-9)
    assert res.t_mem == 100 and res.missing == ""
    assert res.t_excluded == T_PLANT
    assert res.t_excluded_online == T_ONLINE
    # What the summary, report and sweep use: t_mem on, stopping once the rise has held for 5 evaluations.
    short = offline_excluded(tmp_path / "run", full=False)
    assert short.t_excluded == T_PLANT and short.steps == tuple(range(100, T_PLANT + 500, 100))


def test_too_few_checkpoints_give_the_documented_reason(tiny: Config, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    plant_run(tmp_path / "run", tiny, [500, 1000, 1500, 2000], monkeypatch)  # every 5th evaluation
    res = offline_excluded(tmp_path / "run")
    assert res.t_excluded is None and res.t_excluded_online == T_ONLINE
    assert res.missing.startswith("needs a checkpoint at every probed evaluation from memorisation on")
    assert "16 of 20 have none, first at step 100" in res.missing
    assert res.key_freqs == FINAL_KEYS and res.steps == (500, 1000, 1500, 2000)  # the series where it can be
    rows = [json.loads(line) for line in (tmp_path / "run" / layout.METRICS).read_text().splitlines()]
    events = run_events(rows, excluded=res.record())
    assert events["t_excluded"] is None and events["t_excluded_online"] == T_ONLINE
    assert why_missing("t_excluded", rows, events, running=False) == res.missing
    assert why_missing("t_excluded", rows, run_events(rows), running=False).startswith("not computed")


def test_report_shows_both_and_marks_the_offline_ones_provisional_until_the_run_ends(
        tiny: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant_run(tmp_path / "run", tiny, STEPS[1:], monkeypatch)  # no summary, no owner.json: "unknown", not ended
    report = run_report(tmp_path / "run")
    assert report["t_excluded"] == T_PLANT and report["t_excluded_online"] == T_ONLINE
    assert report["status"] == "unknown" and "t_excluded" in report["provisional"]
    text = report_text(report)
    assert "final keys (t_excluded)" in text and "online keys (logged)" in text
    assert "provisional: the run has not finished (unknown)" in text and "key frequencies 3, 7," in text
    (tmp_path / "run" / layout.SUMMARY).write_text(json.dumps({"status": "completed", "t_excluded_online": 600}))
    ended = run_report(tmp_path / "run")
    assert ended["t_excluded"] == T_PLANT and ended["provisional"] == []


def test_a_summary_from_before_reads_its_t_excluded_as_the_online_one() -> None:
    old = clean_summary({"status": "completed", "t_excluded": 800, "t_grok": 2000})
    assert old is not None and old["t_excluded"] is None and old["t_excluded_online"] == 800
    new = clean_summary({"status": "completed", "t_excluded": 600, "t_excluded_online": 800,
                         "excluded_offline": {"t_excluded": 600, "key_freqs": [3, 7], "final_step": 2000,
                                              "n_checkpoints": 20, "n_probed": 21, "n_analysed": 20, "missing": ""}})
    assert new is not None and new["t_excluded"] == 600 and new["excluded_offline"]["key_freqs"] == [3, 7]


def test_the_sweep_table_takes_t_excluded_from_the_checkpoints(tiny: Config, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A summary written before the offline baseline: its t_excluded is the online one.
    plant_run(tmp_path / "r0", tiny, STEPS[1:], monkeypatch, summary={"status": "completed", "t_excluded": 600})
    plant_run(tmp_path / "r1", tiny, [1000, 2000], monkeypatch, summary={"status": "completed", "t_excluded": 600})
    jobs = [RunJob(f"r{i}", str(tmp_path / f"r{i}"), {}) for i in range(2)]
    meta = [{"name": f"r{i}", "point": {"task.p": "23"}, "seed": i} for i in range(2)]
    report = collect_sweep({"profile": "x", "grid": {"task.p": ["23"]}, "seeds": [0, 1], "backend": "local"},
                           jobs, meta, [])
    r0, r1 = report["runs"]
    assert (r0["t_excluded"], r0["t_excluded_online"], r0["t_excluded_missing"]) == (T_PLANT, T_ONLINE, None)
    assert r1["t_excluded"] is None and r1["t_excluded_missing"].startswith("needs a checkpoint")
    md = sweep_markdown(report)
    assert f"| {T_PLANT} | {T_ONLINE} |" in md and "| n/a | 600 |" in md and "- r1: t_excluded not computed" in md


def test_a_broken_checkpoint_is_a_one_line_error_and_a_reason_in_tables(tiny: Config, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    plant_run(tmp_path / "run", tiny, STEPS[1:], monkeypatch)
    (tmp_path / "run" / layout.CHECKPOINTS / layout.checkpoint_name(STEPS[-1])).write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="step_00002000.pt: not a readable grokmon checkpoint"):
        offline_excluded(tmp_path / "run")
    record = excluded_record(tmp_path / "run")
    assert record["t_excluded"] is None and record["missing"].startswith("cannot recompute from the checkpoints")
