"""FSD (SPEC 3) on the sanity cases the spec requires, plus a slow loop reference for the batched null."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grokmon.fourier import additive_basis, freq_energy_1d, freq_energy_2d
from grokmon.metrics.fsd import fsd


def _grid(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(p).repeat_interleave(p), torch.arange(p).repeat(p)


def random_init_spectra(seed: int, p: int = 31, d: int = 16,
                        d_mlp: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A random 1-layer-like model: embed, block outputs that are functions of the embedding, and an
    independent unembed. Returns (input spectra [3, K], output spectrum [K])."""
    g = torch.Generator().manual_seed(seed)
    B = additive_basis(p)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) / math.sqrt(shape[0])

    W_E, W_V, W_in, W_out, W_U = randn(p + 1, d), randn(d, d), randn(d, d_mlp), randn(d_mlp, d), randn(d, p)
    a, b = _grid(p)
    attn = (0.3 * W_E[a] + 0.7 * W_E[b]) @ W_V  # [p*p, d]
    mlp = torch.relu((W_E[b] + attn) @ W_in) @ W_out  # [p*p, d]
    inputs = torch.stack([freq_energy_1d(B, W_E), freq_energy_2d(B, attn), freq_energy_2d(B, mlp)])
    return inputs.numpy(), freq_energy_1d(B, W_U.T).numpy()


def test_random_init_is_small_and_p_roughly_uniform() -> None:
    spectra = [random_init_spectra(s) for s in range(20)]
    for statistic in ("overlap", "pearson"):
        results = [fsd(*spec, seed=s, statistic=statistic) for s, spec in enumerate(spectra)]
        ps = np.array([r.p_value for r in results])
        values = np.array([r.fsd for r in results])
        assert (ps < 0.05).sum() <= 4, (statistic, ps)
        assert (ps > 0.5).sum() >= 5, (statistic, ps)  # not piled up at 0
        assert abs(values.mean()) < 0.15, (statistic, values)


def same_freq_spectra(freqs: list[int], p: int = 59, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every component built from cos/sin of the same frequencies, with component-specific amplitudes."""
    gen = torch.Generator().manual_seed(seed)
    B = additive_basis(p)
    x = torch.arange(p, dtype=torch.float64)
    a, b = (t.double() for t in _grid(p))

    def token_map(d: int) -> torch.Tensor:  # [p, d]
        cols = [torch.cos(2 * math.pi * k * x / p + float(torch.rand(1, generator=gen)) * 6) for k in freqs]
        mix = torch.rand(len(freqs), d, generator=gen, dtype=torch.float64) + 0.5
        return torch.stack(cols, 1) @ mix

    def grid_map(d: int) -> torch.Tensor:  # [p*p, d]
        cols = [torch.cos(2 * math.pi * k * (a + b) / p) for k in freqs]
        cols += [torch.sin(2 * math.pi * k * a / p) for k in freqs]
        mix = torch.rand(len(cols), d, generator=gen, dtype=torch.float64) + 0.5
        return torch.stack(cols, 1) @ mix

    inputs = torch.stack([freq_energy_1d(B, token_map(8)), freq_energy_2d(B, grid_map(8)),
                          freq_energy_2d(B, grid_map(8))])
    return inputs.numpy(), freq_energy_1d(B, token_map(8)).numpy()


@pytest.mark.parametrize("statistic", ["overlap", "pearson"])
def test_shared_frequencies_synchronise(statistic: str) -> None:
    inputs, output = same_freq_spectra([3, 8, 11, 17, 25])
    r = fsd(inputs, output, n_perm=1000, seed=0, statistic=statistic)
    assert r.fsd > 0.9
    assert r.p_value == pytest.approx(1 / 1001)
    assert r.sync and r.z > 3


@pytest.mark.parametrize("statistic", ["overlap", "pearson"])
def test_disjoint_frequencies_do_not(statistic: str) -> None:
    inputs, _ = same_freq_spectra([1, 2, 3, 4, 5])
    _, output = same_freq_spectra([10, 11, 12, 13, 14], seed=1)
    r = fsd(inputs, output, seed=0, statistic=statistic)
    assert r.fsd <= 0
    assert not r.sync


def test_deterministic_per_seed() -> None:
    inputs, output = random_init_spectra(3)
    assert fsd(inputs, output, seed=7) == fsd(inputs, output, seed=7)
    assert fsd(inputs, output, seed=7) != fsd(inputs, output, seed=8)
    gen_result = fsd(inputs, output, seed=np.random.default_rng(7))
    assert gen_result == fsd(inputs, output, seed=7)


def _reference(inputs: np.ndarray, output: np.ndarray, perms: np.ndarray, statistic: str,
               m: int) -> tuple[float, np.ndarray]:
    """One permutation at a time, with explicit top-m sets: the definition, not the fast path."""
    pi_in = inputs / inputs.sum(1, keepdims=True)
    pi_out = output / output.sum()

    def top(v: np.ndarray) -> set[int]:
        return set(np.argsort(-v, kind="stable")[:m].tolist())

    def agree(u: np.ndarray, t_u: set[int], v: np.ndarray, t_v: set[int]) -> float:
        if statistic == "pearson":
            return float(np.corrcoef(u, v)[0, 1])
        both = t_u & t_v
        a_uv = sum(u[k] for k in both) / sum(u[k] for k in t_u)
        a_vu = sum(v[k] for k in both) / sum(v[k] for k in t_v)
        return 0.5 * (a_uv + a_vu)

    def stat(out: np.ndarray, t_out: set[int]) -> float:
        return float(np.mean([agree(c, top(c), out, t_out) for c in pi_in]))

    t_out = top(pi_out)
    null = [stat(pi_out[perm], {j for j in range(len(perm)) if perm[j] in t_out}) for perm in perms]
    return stat(pi_out, t_out), np.array(null)


@pytest.mark.parametrize(("statistic", "m"), [("overlap", 5), ("overlap", 3), ("pearson", 5)])
def test_vectorised_null_equals_the_loop(statistic: str, m: int) -> None:
    inputs, output = random_init_spectra(5)
    n_perm = 50
    r = fsd(inputs, output, n_perm=n_perm, seed=11, statistic=statistic, m=m)
    rng = np.random.default_rng(11)  # the same draws fsd makes
    perms = np.argsort(rng.random((n_perm, output.size)), axis=1)
    s, null = _reference(inputs, output, perms, statistic, m)
    assert r.s == pytest.approx(s)
    assert r.mu0 == pytest.approx(null.mean())
    assert r.sd0 == pytest.approx(null.std())
    assert r.p_value == pytest.approx((1 + np.sum(null >= s - 1e-12)) / (n_perm + 1))
    assert r.fsd == pytest.approx((s - null.mean()) / (1 - null.mean()))


def test_degenerate_inputs_stay_finite() -> None:
    K = 10
    flat = np.ones((2, K))
    r = fsd(flat, np.ones(K), statistic="pearson")  # constant spectra: Pearson undefined -> 0
    assert (r.s, r.fsd, r.z) == (0.0, 0.0, 0.0)
    r = fsd(np.random.default_rng(0).random((2, K)), np.random.default_rng(1).random(K), m=K)
    assert r.fsd == 0.0 and r.z == 0.0 and r.p_value == 1.0  # every top set is everything: no information
    r = fsd(np.zeros((1, K)), np.zeros(K))  # all-zero spectra are treated as uniform
    assert all(math.isfinite(v) for v in (r.fsd, r.z, r.s, r.mu0, r.sd0, r.p_value))
    with pytest.raises(ValueError):
        fsd(flat, np.ones(K + 1))
    with pytest.raises(ValueError):
        fsd(flat, np.ones(K), statistic="spearman")
