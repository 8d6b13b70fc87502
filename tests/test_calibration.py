"""The FSD permutation null is calibrated on both basis kinds (docs/metrics.md): synthetic probe-like components of
independent isotropic noise reject at p < alpha no more often than alpha, and not absurdly less often.

Each draw builds the probe's components from independent Gaussian noise through grokmon's own spectra:
an embedding-like token map (1-D), one grid tensor over all pairs (2-D, like a block output) and an
unembedding-like token map (1-D, the output side). The output side is independent of the input side, so
every p-value comes from the null. The multiplicative basis (q = p - 1 even) is the case that needs the
Nyquist weighting in grokmon.fourier: without it its cos-only top frequency holds a smaller share on
every component, both sides agree on leaving it out, and the test rejects too often (measured with this
file's settings over four seeds: overlap 7.0-8.2 %, Pearson 29-30 %; after the fix 3.9-5.0 %).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
import torch

from grokmon.fourier import basis_for_op, freq_energy_1d, freq_energy_2d
from grokmon.metrics.fsd import fsd

pytestmark = pytest.mark.unit

ALPHA = 0.05
# Draws per basis; both statistics reuse them. The multiplicative basis gets more: without the Nyquist
# weighting its overlap rate is 7-8 %, and the bound for 3000 draws is 6.3 % (7.3 % for 1000 draws).
N_DRAWS = {"add": 1500, "mul": 3000}
SEEDS = {"add": 11, "mul": 12}
N_PERM = 199
P = 23  # additive K = 11; multiplicative q = 22, K = 11 with a cos-only Nyquist frequency
D = 16  # columns of every component (a d_model-like width; the spectra sum over them)
CHUNK = 500  # draws of noise generated at once (the grid noise of 500 draws is 31 MB)


def binomial_quantile(n: int, rate: float, q: float) -> int:
    """The smallest c with P(X <= c) >= q for X ~ Binomial(n, rate), summed exactly in log space."""
    log_r, log_1r = math.log(rate), math.log1p(-rate)
    cdf = 0.0
    for c in range(n + 1):
        cdf += math.exp(math.lgamma(n + 1) - math.lgamma(c + 1) - math.lgamma(n - c + 1) + c * log_r + (n - c) * log_1r)
        if cdf >= q:
            return c
    return n


def exact_size(alpha: float, n_perm: int) -> float:
    """P(p < alpha) of an exact permutation test with continuous statistics: p = j / (n_perm + 1) with j
    uniform on 1..n_perm + 1, so the size is (ceil(alpha (n_perm + 1)) - 1) / (n_perm + 1) <= alpha."""
    return (math.ceil(alpha * (n_perm + 1)) - 1) / (n_perm + 1)


@lru_cache(maxsize=None)
def null_spectra(op: str, seed: int, n_draws: int) -> tuple[np.ndarray, np.ndarray]:
    """n_draws draws of (input spectra [N, 2, K], output spectra [N, K]) from independent isotropic noise."""
    B = basis_for_op(op, P)
    gen = torch.Generator().manual_seed(seed)
    inputs, outputs = [], []
    for start in range(0, n_draws, CHUNK):
        n = min(CHUNK, n_draws - start)
        embed = torch.randn(n, P + 1, D, generator=gen, dtype=torch.float64)  # W_E: p numbers and '='
        grid = torch.randn(n, B.n * B.n, D, generator=gen, dtype=torch.float64)  # the op's (a, b) pairs
        unembed = torch.randn(n, P, D, generator=gen, dtype=torch.float64)  # W_U.T: p answer classes
        for i in range(n):
            inputs.append(torch.stack([freq_energy_1d(B, embed[i]), freq_energy_2d(B, grid[i])]).numpy())
            outputs.append(freq_energy_1d(B, unembed[i]).numpy())
    return np.stack(inputs), np.stack(outputs)


def rejection_rate(op: str, statistic: str, seed: int, n_draws: int) -> float:
    """The share of draws whose FSD p-value is below ALPHA (the nulls drawn from one seeded generator)."""
    inputs, outputs = null_spectra(op, seed, n_draws)
    rng = np.random.default_rng([seed, 1])
    p_values = [fsd(i, o, n_perm=N_PERM, seed=rng, statistic=statistic, alpha=ALPHA).p_value
                for i, o in zip(inputs, outputs)]
    return float(np.mean(np.asarray(p_values) < ALPHA))


def test_binomial_quantile_against_known_values() -> None:
    """The bound's arithmetic: Binomial(10, 0.5) quantiles by hand, and the normal approximation at n = 2000."""
    assert binomial_quantile(10, 0.5, 0.5) == 5  # P(X <= 4) = 386/1024 = 0.377, P(X <= 5) = 638/1024
    assert binomial_quantile(10, 0.5, 0.99) == 9  # P(X <= 8) = 1013/1024 = 0.989
    assert binomial_quantile(10, 0.5, 0.999) == 9  # P(X <= 9) = 1023/1024 = 0.99902
    assert binomial_quantile(10, 0.5, 0.9995) == 10
    assert binomial_quantile(10, 0.5, 0.0005) == 0 and binomial_quantile(10, 0.5, 0.001) == 1  # P(X = 0) = 1/1024
    c = binomial_quantile(2000, ALPHA, 0.999)
    assert abs(c - (2000 * ALPHA + 3.09 * math.sqrt(2000 * ALPHA * (1 - ALPHA)))) < 4
    assert exact_size(0.05, 199) == pytest.approx(0.045) and exact_size(0.05, 999) == pytest.approx(0.049)


@pytest.mark.parametrize(("op", "statistic"), [("add", "overlap"), ("add", "pearson"),
                                               ("mul", "overlap"), ("mul", "pearson")])
def test_null_rejects_at_most_alpha_and_not_far_below(op: str, statistic: str) -> None:
    """Under independent isotropic noise the rate of p < alpha over n draws is at most the 99.9 % upper
    quantile of Binomial(n, alpha) / n, and at least the 0.1 % lower quantile of Binomial(n, size) / n,
    size = 9/200 the exact test's rejection rate at N_PERM = 199. (The permutation test is legitimately a
    little conservative: p takes the values j / 200, so even an exact test rejects 4.5 %, not 5 %; ties in
    the statistic would lower that further.)"""
    n = N_DRAWS[op]
    rate = rejection_rate(op, statistic, SEEDS[op], n)
    upper = binomial_quantile(n, ALPHA, 0.999) / n
    lower = binomial_quantile(n, exact_size(ALPHA, N_PERM), 0.001) / n
    assert rate <= upper, f"{op}/{statistic}: {rate:.4f} of {n} null draws had p < {ALPHA} (bound {upper:.4f})"
    assert rate >= lower, (f"{op}/{statistic}: only {rate:.4f} had p < {ALPHA}: "
                           f"absurdly conservative (bound {lower:.4f})")
