"""FSD (docs/metrics.md) on the sanity cases of its definition, plus a slow loop reference for the batched null."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grokmon.fourier import additive_basis, freq_energy_1d, freq_energy_2d
from grokmon.metrics.fsd import fsd, null_mean, statistic_and_null

pytestmark = pytest.mark.unit


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
    """Inputs on k = 1..5, output on k = 10..14 (K = 29): the top-5 sets are disjoint, so the overlap is 0
    and FSD = -mu0 / (1 - mu0) = -5/24, with every null draw >= 0 (p = 1); Pearson is negative (a
    component's energy sits where the output has none) and so is FSD; neither is significant."""
    inputs, _ = same_freq_spectra([1, 2, 3, 4, 5])
    _, output = same_freq_spectra([10, 11, 12, 13, 14], seed=1)
    r = fsd(inputs, output, seed=0, statistic=statistic)
    if statistic == "overlap":
        assert r.s == 0.0 and r.mu0 == 5 / 29
        assert r.fsd == pytest.approx(-5 / 24) and r.p_value == 1.0
    else:
        assert r.s < 0 and r.fsd == r.s and r.p_value > 0.5
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
    assert r.sd0 == pytest.approx(null.std())
    assert r.p_value == pytest.approx((1 + np.sum(null >= s - 1e-12)) / (n_perm + 1))
    mu0 = m / output.size if statistic == "overlap" else 0.0  # exact, not the draws' mean
    assert r.mu0 == mu0
    assert r.fsd == pytest.approx((s - mu0) / (1 - mu0))
    assert r.z == pytest.approx((s - mu0) / null.std())
    s_fast, null_fast = statistic_and_null(inputs, output, perms, statistic=statistic, m=m)
    assert s_fast == pytest.approx(s) and np.allclose(null_fast, null)


def test_degenerate_inputs_stay_finite() -> None:
    K = 10
    flat = np.ones((2, K))
    r = fsd(flat, np.ones(K), statistic="pearson")  # constant spectra: Pearson undefined -> 0
    assert (r.s, r.fsd, r.z) == (0.0, 0.0, 0.0)
    r = fsd(np.random.default_rng(0).random((2, K)), np.random.default_rng(1).random(K), m=K)
    assert r.fsd == 0.0 and r.z == 0.0 and r.p_value == 1.0  # every top set is everything: no information
    for statistic in ("overlap", "pearson"):  # all-zero spectra are treated as uniform: no information
        r = fsd(np.zeros((1, K)), np.zeros(K), statistic=statistic)
        assert (r.fsd, r.z, r.p_value, r.sync) == (0.0, 0.0, 1.0, False), statistic
        r = fsd(np.random.default_rng(2).random((3, K)), np.full(K, 0.1), statistic=statistic)  # flat output
        assert (r.fsd, r.z, r.p_value, r.sync) == (0.0, 0.0, 1.0, False), statistic
    r = fsd(np.zeros((2, K)), np.random.default_rng(1).random(K))  # flat inputs against an informative output
    assert r.mu0 == 0.5 and all(math.isfinite(v) for v in (r.fsd, r.z, r.s, r.sd0)) and 0 < r.p_value <= 1
    with pytest.raises(ValueError):
        fsd(flat, np.ones(K + 1))
    with pytest.raises(ValueError):
        fsd(flat, np.ones(K), statistic="spearman")


def _spectra_cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(name, inputs [C, K], output [K], m): continuous spectra, tied spectra, a one-hot output, m >= K."""
    rng = np.random.default_rng(2024)
    tied_in = rng.integers(0, 3, size=(3, 12)).astype(float)  # many ties inside every top-m set
    tied_in[:, 0] += 1.0  # no all-zero row
    return [
        ("exponential K=15 m=5", rng.exponential(size=(3, 15)), rng.exponential(size=15), 5),
        ("heavy-tailed K=56 m=5", rng.pareto(1.5, size=(4, 56)), rng.pareto(1.5, size=56), 5),
        ("exponential K=11 m=1", rng.exponential(size=(2, 11)), rng.exponential(size=11), 1),
        ("ties K=12 m=3", tied_in, rng.integers(0, 2, size=12).astype(float) + 0.5, 3),
        ("one-hot output K=9 m=4", rng.exponential(size=(3, 9)), np.eye(9)[2], 4),
        ("m = K", rng.exponential(size=(2, 6)), rng.exponential(size=6), 6),
        ("m > K", rng.exponential(size=(2, 6)), rng.exponential(size=6), 10),
    ]


@pytest.mark.parametrize("statistic", ["overlap", "pearson"])
def test_exact_null_mean_matches_a_100k_draw_simulation(statistic: str) -> None:
    """mu0 = m / K (overlap; 1 once m >= K) and 0 (Pearson) is the mean of the permutation null: on every
    case a 100,000-permutation simulation's mean lies within 4.5 standard errors of it (standard error =
    the draws' sd / sqrt(n); a case whose null is constant must match to float precision). The tolerance
    is tight enough to tell m / K from m / (K + 1) or the old simulated mean's typical error."""
    n = 100_000
    for name, inputs, output, m in _spectra_cases():
        K = output.size
        perms = np.argsort(np.random.default_rng([7, K, m]).random((n, K)), axis=1)
        _, null = statistic_and_null(inputs, output, perms, statistic=statistic, m=m)
        exact = null_mean(statistic, K, m)
        assert exact == (min(m, K) / K if statistic == "overlap" else 0.0), name
        se = float(null.std()) / math.sqrt(n)
        assert abs(float(null.mean()) - exact) <= 4.5 * se + 1e-12, (name, null.mean(), exact, se)
        if statistic == "overlap" and m < K:  # the bound has power: a neighbouring value is rejected
            assert abs(float(null.mean()) - m / (K + 1)) > 4.5 * se, name
        result = fsd(inputs, output, n_perm=200, seed=1, statistic=statistic, m=m)
        assert result.mu0 == exact, name


def test_fsd_no_longer_depends_on_the_null_draws_beyond_p_and_z() -> None:
    """With mu0 exact, FSD and S are the same for every seed and n_perm; only p, sd0 and z vary."""
    inputs, output = random_init_spectra(4)
    for statistic in ("overlap", "pearson"):
        results = [fsd(inputs, output, n_perm=n, seed=seed, statistic=statistic)
                   for n in (10, 1000) for seed in range(3)]
        assert len({(r.fsd, r.s, r.mu0) for r in results}) == 1
        assert len({r.sd0 for r in results}) > 1
    with pytest.raises(ValueError):
        null_mean("spearman", 10)
    with pytest.raises(ValueError):
        null_mean("overlap", 10, m=0)
