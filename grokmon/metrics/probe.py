"""The Fourier metrics of one checkpoint: component spectra, FSD, top frequencies, progress measures.

Reads parameters by their TransformerLens names and block outputs from the evaluation's cache; knows
nothing about the engine, the optimiser or where results go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from grokmon.fourier import FourierBasis, basis_for_op, freq_energy_1d, freq_energy_2d, spectrum_share, top_k
from grokmon.metrics.fsd import fsd
from grokmon.metrics.keys import PROBE_KEYS
from grokmon.metrics.progress import excluded_loss, fourier_gini, key_frequencies, restricted_loss, weight_norm

# The keys a probe adds to a metrics.jsonl row (README "The run directory").
METRIC_KEYS = PROBE_KEYS  # the row keys this probe fills (all but phase, which the engine sets)
TOP_N = 5


@dataclass(frozen=True)
class ProbeResult:
    metrics: dict[str, Any]  # the METRIC_KEYS but "phase" (the engine knows the run's events)
    spectra: dict[str, list[float]] = field(default_factory=dict)  # component -> energy per k = 1..K
    key_freqs: list[int] = field(default_factory=list)


class FourierProbe:
    """Built once per run (basis, labels, split); `measure` is then a pure function of one checkpoint."""

    def __init__(self, op: str, p: int, labels: torch.Tensor, train_mask: torch.Tensor, *,
                 n_perm: int = 1000, statistic: str = "overlap", top_m: int = 5, alpha: float = 0.05,
                 seed: int = 0) -> None:
        self.basis: FourierBasis = basis_for_op(op, p)
        self.labels = labels.cpu()  # [n_pairs]
        self.train_mask = train_mask.cpu()  # [n_pairs] bool
        self.n_perm, self.statistic, self.top_m, self.alpha, self.seed = n_perm, statistic, top_m, alpha, seed

    def spectra(self, params: Mapping[str, torch.Tensor], cache: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Energy per frequency [K] of each FSD component, input side first, "unembed" last.

        embed: W_E number rows (1-D); blocks.L.attn_out / mlp_out: the block's output at the last position
        over all pairs, read from the reference cache's blocks.L.hook_attn_out / hook_mlp_out [n_pairs, pos,
        d_model] as a grid tensor [n_pairs, d_model] in data order (2-D); unembed: the W_U columns of the
        answer classes (1-D). Other hooks in the cache are ignored.
        """
        out = {"embed": freq_energy_1d(self.basis, params["W_E"].detach())}
        for component, hook in _block_outputs(cache):
            out[component] = freq_energy_2d(self.basis, cache[hook][:, -1].detach())
        out["unembed"] = freq_energy_1d(self.basis, params["W_U"].detach().T)
        return out

    def measure(self, params: Mapping[str, torch.Tensor], logits: torch.Tensor,
                cache: Mapping[str, torch.Tensor], step: int) -> ProbeResult:
        """params: the model's named parameters; logits [n_pairs, p] and the reference model's cache
        (`Transformer.forward(tokens, cache)`) over ALL pairs, data order."""
        spectra = self.spectra(params, cache)
        names = list(spectra)
        e = torch.stack([spectra[n] for n in names]).cpu().numpy()  # [C + 1, K]
        res = fsd(e[:-1], e[-1], n_perm=self.n_perm, seed=null_rng(self.seed, step),
                  statistic=self.statistic, m=self.top_m, alpha=self.alpha)
        W_L = _neuron_logit_map(params)  # [d_mlp, p] or None
        embed_share = spectrum_share(spectra["embed"])
        wl_share = spectrum_share(freq_energy_1d(self.basis, W_L.T)) if W_L is not None else None
        keys = key_frequencies(wl_share if wl_share is not None else embed_share)
        metrics = {
            "fsd": res.fsd, "fsd_p": res.p_value, "fsd_z": res.z, "fsd_sync": res.sync,
            "top_freqs": _pairs(top_k(embed_share, TOP_N)),
            "wl_top_freqs": _pairs(top_k(wl_share, TOP_N)) if wl_share is not None else None,
            "key_freqs": [int(k) for k in keys],  # behind restricted / excluded loss (online: this checkpoint's)
            "restricted_loss": restricted_loss(logits, self.labels, self.basis, keys),
            "excluded_loss": excluded_loss(logits, self.labels, self.basis, keys, self.train_mask),
            "gini_embed": fourier_gini(self.basis, params["W_E"].detach()),
            "gini_wl": fourier_gini(self.basis, W_L.T) if W_L is not None else None,
            "weight_norm": weight_norm(params),
        }
        return ProbeResult(metrics=metrics, spectra={n: e[i].tolist() for i, n in enumerate(names)},
                           key_freqs=keys)


def null_rng(seed: int, step: int) -> np.random.Generator:
    """The FSD null's permutations at one checkpoint: the same run gives the same p-values, resumed or
    not, and an offline recomputation from spectra.jsonl draws the same null."""
    return np.random.default_rng([seed, step])


def _neuron_logit_map(params: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """W_L = W_out @ W_U of the last MLP block: [d_mlp, p]; None for an attention-only model."""
    w_outs = sorted((k for k in params if k.endswith("mlp.W_out")), key=_block_order)
    if not w_outs:
        return None
    return params[w_outs[-1]].detach() @ params["W_U"].detach()


# The cache hooks the probe reads, by the component name each gets. The names are keys of spectra.jsonl
# that other tools read: they stay "attn_out" / "mlp_out" although the hooks are TransformerLens's.
_COMPONENT_OF_HOOK = {"hook_attn_out": "attn_out", "hook_mlp_out": "mlp_out"}


def _block_outputs(cache: Mapping[str, torch.Tensor]) -> list[tuple[str, str]]:
    """(component, hook) of each block output in the cache, in residual-stream order:
    ("blocks.0.attn_out", "blocks.0.hook_attn_out"), ("blocks.0.mlp_out", "blocks.0.hook_mlp_out"), ..."""
    found = []
    for hook in cache:
        parts = hook.split(".")
        if len(parts) == 3 and parts[0] == "blocks" and parts[2] in _COMPONENT_OF_HOOK:
            found.append((f"blocks.{parts[1]}.{_COMPONENT_OF_HOOK[parts[2]]}", hook))
    return sorted(found, key=lambda pair: _block_order(pair[0]))


def _block_order(name: str) -> tuple[int, int]:
    """blocks.L.attn_out before blocks.L.mlp_out before blocks.L+1...; the residual-stream order."""
    parts = name.split(".")
    return (int(parts[1]), 0 if parts[2].startswith("attn") else 1)


def _pairs(top: list[tuple[int, float]]) -> list[list[float]]:
    return [[int(k), round(float(s), 6)] for k, s in top]
