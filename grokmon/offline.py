"""The excluded loss as the definition asks for a finished run: key frequencies from the FINAL checkpoint,
reused at every earlier probed evaluation, and the excluded-loss baseline t_excluded on that series.

Reads a run directory's config, rows and checkpoints; never writes. The formulas are grokmon.metrics's
(progress.excluded_loss, grokking.excluded_loss_baseline); the key frequencies are the probe's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from grokmon.config import Config
from grokmon.data import make_dataset
from grokmon.errors import ConfigError, GrokmonError
from grokmon.fast import train_forward
from grokmon.metrics.grokking import excluded_loss_baseline
from grokmon.metrics.probe import FourierProbe
from grokmon.metrics.progress import excluded_loss
from grokmon.metrics.runs import memorised_at, probed_rows, run_events
from grokmon.model import Transformer
from grokmon.rundir.readers import checkpoints, load_checkpoint, read_config, read_rows
from grokmon.rundir.records import EXCLUDED_OFFLINE_KEYS, clean_excluded_offline


@dataclass(frozen=True)
class OfflineExcluded:
    """The offline excluded loss of one run and its baseline.

    The series covers every probed evaluation that has a checkpoint (with full=False, only t_mem up to
    the settled rise). t_excluded needs a checkpoint at every probed evaluation from memorisation (t_mem)
    on: the baseline's rule (a lasting rise over the next 5 probed evaluations) is defined on that
    sequence, and a thinner one would be a different rule. Without them t_excluded is None and `missing`
    says why; t_excluded_online (the logged series) is always given.
    """

    run_dir: str
    final_step: int | None  # the checkpoint the key frequencies come from (None: no checkpoint)
    key_freqs: tuple[int, ...]  # the final checkpoint's, 1-based, ascending (may be empty)
    steps: tuple[int, ...]  # probed evaluations with a checkpoint, ascending
    excluded_loss: tuple[float, ...]  # [len(steps)] nats, train pairs, final keys removed
    train_acc: tuple[float, ...]  # [len(steps)] from metrics.jsonl
    n_probed: int  # probed evaluations in metrics.jsonl
    n_analysed: int  # of those, the ones from t_mem on: t_excluded needs a checkpoint at each
    t_mem: int | None
    t_excluded: int | None  # the baseline on this series (final keys)
    t_excluded_online: int | None  # the baseline on the logged excluded_loss (each checkpoint's own keys)
    missing: str  # why t_excluded could not be computed; "" when it was (None then means no lasting rise)
    seconds: float  # wall time of the recomputation

    @property
    def n_checkpoints(self) -> int:
        """Checkpoints read for the series: one per point."""
        return len(self.steps)

    def record(self) -> dict[str, Any]:
        """summary.json's excluded_offline object (grokmon.rundir.records.EXCLUDED_OFFLINE_KEYS), no series."""
        out = {"t_excluded": self.t_excluded, "key_freqs": list(self.key_freqs), "final_step": self.final_step,
               "n_checkpoints": self.n_checkpoints, "n_probed": self.n_probed, "n_analysed": self.n_analysed,
               "missing": self.missing}
        assert tuple(out) == EXCLUDED_OFFLINE_KEYS  # the declaration is the contract
        return out


def coverage_reason(cfg: Config, analysed: Sequence[int], have: Iterable[int]) -> str:
    """"" when every analysed step has a checkpoint, else one line: how many lack one and the setting to fix."""
    have = set(have)
    lacking = [s for s in analysed if s not in have]
    if not lacking:
        return ""
    probe_every = cfg.train.eval_every * max(1, cfg.metrics.metrics_every)
    return (f"needs a checkpoint at every probed evaluation from memorisation on (train.checkpoint_every "
            f"dividing eval_every x metrics_every = {probe_every}; it is {cfg.train.checkpoint_every}): "
            f"{len(lacking)} of {len(analysed)} have none, first at step {lacking[0]}")


def offline_excluded(run_dir: Path | str, rows: Sequence[Mapping[str, Any]] | None = None, *,
                     cfg: Config | None = None, full: bool = True) -> OfflineExcluded:
    """Recompute the excluded loss of a run from its checkpoints with the final checkpoint's key frequencies.

    Loads the latest checkpoint, takes its key frequencies with the probe's rule (FourierProbe.measure), then
    at every probed evaluation (metrics.jsonl) that has a checkpoint runs the model over all pairs and takes
    the excluded loss on the train pairs with those keys. `rows` / `cfg` default to the run directory's.
    `full`: the whole series (for plots and tables); otherwise only what t_excluded needs: the evaluations
    from t_mem on, stopping once the rise is settled (the rule is causal, so the answer is the same), and
    none when the checkpoints do not cover them.
    Cost: one checkpoint load and one forward over all p^2 pairs per point (the run's own evaluation
    forward); about 0.3-0.5 s per point for p = 113 with 2 layers at one thread.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    cfg = read_config(run_dir) if cfg is None else cfg
    rows = read_rows(run_dir) if rows is None else rows
    probed = probed_rows(rows)
    t_mem = memorised_at(probed)
    analysed = [int(r["step"]) for r in probed if t_mem is not None and r["step"] >= t_mem]
    train_acc = {int(r["step"]): float(r["train_acc"]) for r in probed}
    online = run_events(rows, cfg.metrics.alpha)["t_excluded_online"]
    found = checkpoints(run_dir)

    def result(**kw: Any) -> OfflineExcluded:
        base: dict[str, Any] = dict(run_dir=str(run_dir), final_step=None, key_freqs=(), steps=(),
                                    excluded_loss=(), train_acc=(), n_probed=len(probed), n_analysed=len(analysed),
                                    t_mem=t_mem, t_excluded=None, t_excluded_online=online, missing="")
        base.update(kw)
        return OfflineExcluded(**base, seconds=time.perf_counter() - t0)

    if not probed:
        return result(missing="no probed evaluations (Fourier metrics off or none yet)")
    if not found:
        return result(missing="no checkpoints in the run directory")
    missing = coverage_reason(cfg, analysed, found)
    todo = [s for s in sorted(train_acc) if s in found] if full else ([] if missing else analysed)
    final_step = max(found)
    steps: list[int] = []
    losses: list[float] = []
    t_excluded = None
    with torch.no_grad():
        scorer = _Scorer(cfg)
        keys = scorer.final_keys(found[final_step], final_step)
        for step in todo:
            steps.append(step)
            losses.append(scorer.excluded(found[step], keys))
            if not missing and t_mem is not None and step >= t_mem:
                t_excluded = excluded_loss_baseline(steps, losses, [train_acc[s] for s in steps])
                if t_excluded is not None and not full:
                    break
    return result(final_step=final_step, key_freqs=tuple(keys), steps=tuple(steps), excluded_loss=tuple(losses),
                  train_acc=tuple(train_acc[s] for s in steps), t_excluded=t_excluded, missing=missing)


class _Scorer:
    """The run's model, data and probe, built once; each call loads one checkpoint into the model."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.data = make_dataset(cfg.task)
        self.model = Transformer(cfg.model, cfg.task.p)
        # The engine's evaluation forward (the training kernel when train.fast): the logged numbers'
        # own logits. It reads the parameters at each call, so load_state_dict below is enough.
        self.forward = train_forward(self.model) if cfg.train.fast else self.model
        me = cfg.metrics
        self.probe = FourierProbe(cfg.task.op, cfg.task.p, self.data.labels, self.data.train_mask,
                                  n_perm=me.n_perm, statistic=me.fsd_statistic, top_m=me.fsd_top_m,
                                  alpha=me.alpha, seed=cfg.model.seed)

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        try:
            dtype = state.model["W_E"].dtype  # a float64 run is evaluated in float64, as during training
            if dtype != self.model.W_E.dtype:
                self.model.to(dtype)
            self.model.load_state_dict(state.model)
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"the checkpoint does not fit the run's config.json ({first[:120]})",
                              source=str(path)) from None

    def final_keys(self, path: Path, step: int) -> list[int]:
        """The key frequencies of one checkpoint, by the probe's rule (its measure, as during training; the
        FSD it also computes costs ~0.2 s for p = 113, once per run)."""
        self._load(path)
        cache: dict[str, torch.Tensor] = {}
        logits = self.model(self.data.tokens, cache)  # [n_pairs, p]; the probe reads the reference cache
        return list(self.probe.measure(dict(self.model.named_parameters()), logits, cache, step).key_freqs)

    def excluded(self, path: Path, keys: list[int]) -> float:
        """The excluded loss of one checkpoint with fixed key frequencies."""
        self._load(path)
        logits = self.forward(self.data.tokens)  # [n_pairs, p]
        return excluded_loss(logits, self.data.labels, self.probe.basis, keys, self.data.train_mask)


def excluded_record(run_dir: Path | str, summary: Mapping[str, Any] | None = None,
                    rows: Sequence[Mapping[str, Any]] | None = None, cfg: Config | None = None) -> dict[str, Any]:
    """The excluded_offline record of a run: its summary's when that has one, else recomputed from the
    checkpoints. Never raises for a run directory's content: an unreadable checkpoint or config becomes
    the record's `missing` reason (for the end-of-run summary and for tables over many runs)."""
    kept = clean_excluded_offline(summary.get("excluded_offline")) if summary is not None else None
    if kept is not None:
        return kept
    try:
        return offline_excluded(run_dir, rows, cfg=cfg, full=False).record()
    except GrokmonError as e:
        return missing_record(f"cannot recompute from the checkpoints ({e})")


def missing_record(reason: str) -> dict[str, Any]:
    """An excluded_offline record without a value: `reason` says why."""
    return {"t_excluded": None, "key_freqs": [], "final_step": None, "n_checkpoints": 0, "n_probed": 0,
            "n_analysed": 0, "missing": reason}
