"""Fourier bases and spectra on signals whose spectrum is known (docs/metrics.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grokmon.errors import GrokmonError
from grokmon.fourier import (
    additive_basis,
    basis_for_op,
    discrete_log_order,
    freq_energy_1d,
    freq_energy_2d,
    multiplicative_basis,
    primitive_root,
    spectrum_share,
    top_k,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("p", [3, 7, 13, 113])
@pytest.mark.parametrize("make", [additive_basis, multiplicative_basis])
def test_bases_are_orthonormal(p: int, make) -> None:
    B = make(p)
    F = B.matrix
    assert F.dtype == torch.float64
    assert torch.allclose(F @ F.T, torch.eye(B.n, dtype=torch.float64), atol=1e-12)
    assert sorted(B.tokens.tolist()) == (list(range(p)) if B.kind == "additive" else list(range(1, p)))
    # every row belongs to exactly one frequency; the constant row to none
    assert B.row_freq[0] == 0
    assert sorted(r for k in range(1, B.n_freq + 1) for r in B.rows(k)) == list(range(1, B.n))


def test_additive_rows_follow_the_formula() -> None:
    p = 11
    F = additive_basis(p).matrix
    x = torch.arange(p, dtype=torch.float64)
    assert torch.allclose(F[0], torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64))
    for k in range(1, (p - 1) // 2 + 1):
        cos, sin = torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)
        assert torch.allclose(F[2 * k - 1], cos / cos.norm())
        assert torch.allclose(F[2 * k], sin / sin.norm())


def test_multiplicative_nyquist_has_only_a_cos_row() -> None:
    p = 13
    B = multiplicative_basis(p)
    q = p - 1
    assert B.n == q and B.n_freq == q // 2
    assert B.rows(q // 2) == [q - 1]
    alternating = torch.tensor([(-1.0) ** i for i in range(q)], dtype=torch.float64) / math.sqrt(q)
    assert torch.allclose(B.matrix[q - 1], alternating)


@pytest.mark.parametrize(("p", "g"), [(3, 2), (7, 3), (11, 2), (13, 2), (23, 5), (41, 6), (113, 3)])
def test_primitive_root_is_the_smallest(p: int, g: int) -> None:
    assert primitive_root(p) == g


def test_discrete_log_order() -> None:
    assert discrete_log_order(7) == [1, 3, 2, 6, 4, 5]
    order = discrete_log_order(113)
    assert sorted(order) == list(range(1, 113))


def test_non_prime_and_bad_op_raise() -> None:
    with pytest.raises(GrokmonError):
        multiplicative_basis(15)
    with pytest.raises(GrokmonError):
        basis_for_op("pow", 7)
    assert basis_for_op("sub", 7).kind == "additive"
    assert basis_for_op("div", 7).kind == "multiplicative"


def test_energy_1d_single_frequency_and_parseval() -> None:
    p, k = 31, 4
    B = additive_basis(p)
    x = torch.arange(p, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    v, w = (torch.randn(8, generator=gen, dtype=torch.float64) for _ in range(2))
    M = torch.outer(torch.cos(2 * math.pi * k * x / p + 0.3), v) + w  # a frequency-k map plus a constant
    W_E = torch.cat([M, torch.randn(1, 8, generator=gen, dtype=torch.float64)])  # the '=' row is ignored
    e = freq_energy_1d(B, W_E)
    assert e.shape == (B.n_freq,)
    assert int(e.argmax()) + 1 == k
    assert float(e.sum() - e[k - 1]) < 1e-20
    assert float(e.sum()) == pytest.approx(float(((M - M.mean(0)) ** 2).sum()))


def test_energy_2d_of_a_plus_b_signal_and_parseval() -> None:
    p, k = 17, 3
    B = additive_basis(p)
    a = torch.arange(p).repeat_interleave(p).double()
    b = torch.arange(p).repeat(p).double()
    w = 2 * math.pi * k / p
    A = torch.stack([torch.cos(w * (a + b)), torch.sin(w * (a + b)) + 2.0], dim=1)  # [p*p, 2]
    e = freq_energy_2d(B, A)
    assert int(e.argmax()) + 1 == k
    assert float(e.sum()) == pytest.approx(float(((A - A.mean(0)) ** 2).sum()))
    # a cross-frequency product lives in no {0, 2k-1, 2k}^2 block: it carries no energy
    cross = (torch.cos(2 * math.pi * 2 * a / p) * torch.cos(2 * math.pi * 5 * b / p))[:, None]
    assert float(freq_energy_2d(B, cross).sum()) < 1e-20


@pytest.mark.parametrize("make", [additive_basis, multiplicative_basis])
def test_energy_2d_matches_the_einsum_reference(make) -> None:
    """The two-matmul transform equals the defining einsum summed over {0, 2k-1, 2k}^2 minus (0, 0) cells, for
    every k; the cos-only Nyquist k of the multiplicative basis (3 cells) is weighted x8/3."""
    p = 11 if make is additive_basis else 13
    B = make(p)
    n = B.n
    A = torch.randn(n * n, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # data order
    pos = B.grid_positions()
    X = A.reshape(n, n, 5)[pos][:, pos]  # basis (discrete-log) order
    X = torch.einsum("ia,jb,abd->ijd", B.matrix, B.matrix, X - X.mean((0, 1)))
    cells = (X ** 2).sum(-1)
    ref = [sum(float(cells[i, j]) for i in [0, *B.rows(k)] for j in [0, *B.rows(k)]) for k in range(1, B.n_freq + 1)]
    if make is multiplicative_basis:
        assert len(B.rows(B.n_freq)) == 1
        ref[-1] *= 8 / 3
    assert len(ref) == B.n_freq
    assert np.allclose(freq_energy_2d(B, A).numpy(), ref)
    assert np.allclose(freq_energy_2d(B, A.reshape(n, n, 5)).numpy(), ref)


def test_energy_1d_nyquist_counts_twice_and_the_rest_is_parseval() -> None:
    """Multiplicative basis: an alternating map over discrete-log order is all Nyquist; its e(K) is twice
    the map's energy (one row for two), and the other frequencies keep Parseval."""
    p = 13
    B = multiplicative_basis(p)
    gen = torch.Generator().manual_seed(3)
    M = torch.zeros(p, 4, dtype=torch.float64)
    sign = torch.tensor([(-1.0) ** i for i in range(p - 1)], dtype=torch.float64)
    nyq = torch.outer(sign, torch.randn(4, generator=gen, dtype=torch.float64))
    other = torch.randn(p - 1, 4, generator=gen, dtype=torch.float64)
    other = other - other.mean(0)
    other = other - torch.outer(sign, sign @ other) / (p - 1)  # no Nyquist component
    M[B.tokens] = nyq + other  # rows indexed by token id, in discrete-log order
    e = freq_energy_1d(B, M)
    assert float(e[-1]) == pytest.approx(2 * float((nyq ** 2).sum()))
    assert float(e[:-1].sum()) == pytest.approx(float((other ** 2).sum()))


def test_energy_2d_multiplicative_grid_is_reordered_by_discrete_log() -> None:
    p, k = 13, 2
    B = multiplicative_basis(p)
    dlog = {t: i for i, t in enumerate(discrete_log_order(p))}
    ops = range(1, p)  # the caller's grid: (a, b) ascending over 1..p-1
    A = torch.tensor([[math.cos(2 * math.pi * k * dlog[a * b % p] / (p - 1))] for a in ops for b in ops])
    e = freq_energy_2d(B, A)
    assert int(e.argmax()) + 1 == k
    assert float(e[k - 1] / e.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        freq_energy_2d(B, torch.zeros(p * p, 1))  # p*p rows: the mul grid has no 0 operand


def test_spectrum_share_and_top_k() -> None:
    e = torch.tensor([1.0, 4.0, 0.0, 4.0, 1.0], dtype=torch.float64)
    share = spectrum_share(e)
    assert float(share.sum()) == pytest.approx(1.0)
    assert top_k(share, 3) == [(2, 0.4), (4, 0.4), (1, 0.1)]  # 1-based, ties to the lower frequency
    assert np.allclose(spectrum_share(np.zeros(4)), 0.25)
    assert isinstance(spectrum_share(np.ones(3)), np.ndarray)


@pytest.mark.parametrize("p", [13, 23])
@pytest.mark.parametrize("dims", [1, 2])
def test_isotropic_noise_has_equal_expected_energy_at_every_frequency(p: int, dims: int) -> None:
    """Multiplicative basis (q = p - 1 even, cos-only Nyquist): under isotropic Gaussian noise the expected
    energy of every k, Nyquist included, is the same: 2 rows' worth (1-D) or 8 cells' worth (2-D) per
    column. Checked against the exact value per k within 4.5 standard errors of the draws' mean (the
    standard error from the draws themselves), and the Nyquist mean against the others' pooled mean. The
    unweighted Nyquist mean (1/2 or 3/8 of the others') is many standard errors away."""
    B = multiplicative_basis(p)
    assert B.rows(B.n_freq) == [B.n - 1]  # the cos-only Nyquist row
    gen = torch.Generator().manual_seed(100 * p + dims)
    n_draws, d = 3000, 3
    n_rows = p if dims == 1 else B.n * B.n  # a token-axis map indexed by token id, or the mul grid
    energy = freq_energy_1d if dims == 1 else freq_energy_2d
    e = torch.stack([energy(B, torch.randn(n_rows, d, generator=gen, dtype=torch.float64))
                     for _ in range(n_draws)]).numpy()  # [n_draws, K]
    expected = (2.0 if dims == 1 else 8.0) * d  # every row / cell carries d in expectation
    mean, se = e.mean(axis=0), e.std(axis=0) / math.sqrt(n_draws)
    assert np.all(np.abs(mean - expected) <= 4.5 * se), (mean, expected, se)
    others = e[:, :-1].mean(axis=1)  # per draw: the mean energy of the ordinary frequencies
    diff = e[:, -1] - others
    assert abs(diff.mean()) <= 4.5 * diff.std() / math.sqrt(n_draws), (diff.mean(), diff.std())
    unweighted = mean[-1] * (0.5 if dims == 1 else 3.0 / 8.0)
    assert abs(unweighted - expected) > 10 * se[-1]
