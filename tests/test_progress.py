"""Nanda's progress measures (docs/metrics.md) on logits and maps whose Fourier structure is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grokmon.fourier import (
    additive_basis,
    basis_for_op,
    discrete_log_order,
    freq_energy_1d,
    multiplicative_basis,
    spectrum_share,
)
from grokmon.metrics.progress import (
    excluded_loss,
    fourier_gini,
    gini,
    key_frequencies,
    restricted_loss,
    weight_norm,
)

pytestmark = pytest.mark.unit

KEY = [2, 5, 7]


def known_logits(op: str, p: int, key: list[int], scale: float = 4.0,
                 noise_freq: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits sum_k cos(w_k (x(a) o x(b) - x(c))) in the op's own coordinates (x = dlog for mul/div).

    Returns (logits [n_pairs, p] over the dataset's grid order, labels [n_pairs]).
    """
    mult = op in ("mul", "div")
    ops = range(1, p) if mult else range(p)
    n = p - 1 if mult else p
    dlog = {t: i for i, t in enumerate(discrete_log_order(p))} if mult else {t: t for t in range(p)}
    sign = -1 if op in ("sub", "div") else 1
    coords = torch.tensor([[dlog[a], dlog[b]] for a in ops for b in ops], dtype=torch.float64)
    s = coords[:, 0] + sign * coords[:, 1]  # [n_pairs]: x(answer) mod n
    x_c = torch.tensor([float(dlog[c]) if c in dlog else float("nan") for c in range(p)], dtype=torch.float64)
    logits = torch.zeros(len(s), p, dtype=torch.float64)
    for k in key:
        logits += scale * torch.cos(2 * math.pi * k * (s[:, None] - x_c[None, :]) / n)
    if noise_freq is not None:  # a non-key direction in the same class-grid space
        logits += 0.5 * torch.sin(2 * math.pi * noise_freq * (s[:, None] - x_c[None, :]) / n)
    if mult:
        logits[:, 0] = -10.0  # class 0 is never the answer of mul/div
    inv = {d: t for t, d in dlog.items()}
    labels = torch.tensor([inv[int(v) % n] for v in s], dtype=torch.long)
    return logits, labels


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float(torch.nn.functional.cross_entropy(logits, labels))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_restricted_keeps_and_excluded_removes_the_key_signal(op: str) -> None:
    p = 23
    basis = basis_for_op(op, p)
    logits, labels = known_logits(op, p, KEY)
    full = _ce(logits, labels)
    assert full < 0.5
    assert restricted_loss(logits, labels, basis, KEY) == pytest.approx(full, abs=1e-9)
    train = torch.rand(len(labels), generator=torch.Generator().manual_seed(0)) < 0.3
    ex = excluded_loss(logits, labels, basis, KEY, train)
    # the key directions were the whole signal: what is left is flat over the answer classes
    n_classes = p - 1 if op in ("mul", "div") else p
    assert ex == pytest.approx(math.log(n_classes), abs=1e-3)
    assert ex > 5 * full
    assert excluded_loss(logits, labels, basis, KEY, torch.nonzero(train)[:, 0]) == pytest.approx(ex)


@pytest.mark.parametrize("op", ["mul", "div"])
def test_the_cos_only_nyquist_key_is_kept_and_removed_too(op: str) -> None:
    """mul/div at p = 23: q = 22, so k = 11 has a cos row only. A signal on k = 2 and the Nyquist k = 11
    is kept whole by the restricted loss and removed whole by the excluded loss (ln 22 left)."""
    p, key = 23, [2, 11]
    basis = basis_for_op(op, p)
    assert basis.rows(11) == [21]
    logits, labels = known_logits(op, p, key)
    full = _ce(logits, labels)
    assert restricted_loss(logits, labels, basis, key) == pytest.approx(full, abs=1e-9)
    assert restricted_loss(logits, labels, basis, [2]) > full + 0.1  # the Nyquist part matters
    train = torch.rand(len(labels), generator=torch.Generator().manual_seed(0)) < 0.3
    assert excluded_loss(logits, labels, basis, key, train) == pytest.approx(math.log(p - 1), abs=1e-3)


def test_restricted_loss_drops_non_key_directions_and_ignores_pair_order() -> None:
    p = 23
    basis = additive_basis(p)
    clean, labels = known_logits("add", p, KEY)
    noisy, _ = known_logits("add", p, KEY, noise_freq=9)
    assert restricted_loss(noisy, labels, basis, KEY) == pytest.approx(_ce(clean, labels), abs=1e-9)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    assert restricted_loss(noisy[perm], labels[perm], basis, KEY) == pytest.approx(
        restricted_loss(noisy, labels, basis, KEY))
    # dropping one key frequency hurts
    assert restricted_loss(clean, labels, basis, KEY[:2]) > _ce(clean, labels) + 0.1


def test_key_frequencies_recovers_the_planted_ones() -> None:
    p = 113
    basis = additive_basis(p)
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(p, dtype=torch.float64)
    planted = [14, 35, 41, 42, 52]
    W_E = 0.05 * torch.randn(p + 1, 128, generator=gen, dtype=torch.float64)
    for k in planted:
        direction = torch.randn(128, generator=gen, dtype=torch.float64)
        W_E[:p] += torch.outer(torch.cos(2 * math.pi * k * x / p), direction)
    share = spectrum_share(freq_energy_1d(basis, W_E))
    assert key_frequencies(share) == planted
    assert key_frequencies(np.full(56, 1 / 56)) == []
    random_init = spectrum_share(freq_energy_1d(basis, torch.randn(p, 128, generator=gen)))
    assert key_frequencies(random_init) == []


def test_gini_bounds() -> None:
    n = 10
    assert gini(np.ones(n)) == pytest.approx(0.0)
    one_hot = np.zeros(n)
    one_hot[3] = 2.0
    assert gini(one_hot) == pytest.approx((n - 1) / n)
    assert gini(np.zeros(n)) == 0.0
    values = [gini(np.random.default_rng(s).exponential(size=n) ** s) for s in range(6)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert gini(np.array([1.0, 1.0, 2.0])) < gini(np.array([0.0, 1.0, 3.0]))
    with pytest.raises(ValueError):
        gini(np.array([1.0, -1.0]))


def test_fourier_gini_sparse_vs_random() -> None:
    p = 31
    basis = additive_basis(p)
    x = torch.arange(p, dtype=torch.float64)
    sparse = torch.outer(torch.cos(2 * math.pi * 3 * x / p), torch.ones(4, dtype=torch.float64))
    dense = torch.randn(p, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert fourier_gini(basis, sparse) == pytest.approx((p - 1) / p)
    assert fourier_gini(basis, dense) < 0.5


def test_multiplicative_basis_sparsifies_a_mul_signal() -> None:
    p, k = 29, 3
    dlog = {t: i for i, t in enumerate(discrete_log_order(p))}
    M = torch.zeros(p, 2, dtype=torch.float64)  # token-axis map; token 0 does not occur in mul
    for t in range(1, p):
        angle = 2 * math.pi * k * dlog[t] / (p - 1)
        M[t] = torch.tensor([math.cos(angle), math.sin(angle)])
    mult = spectrum_share(freq_energy_1d(multiplicative_basis(p), M))
    add = spectrum_share(freq_energy_1d(additive_basis(p), M))
    assert float(mult[k - 1]) == pytest.approx(1.0)
    assert float(add.max()) < 0.5
    assert fourier_gini(multiplicative_basis(p), M) > 0.9 > fourier_gini(additive_basis(p), M) + 0.2


def test_weight_norm() -> None:
    params = {"W_E": torch.ones(3, 2), "b_in": torch.full((4,), 0.5, dtype=torch.float32)}
    assert weight_norm(params) == pytest.approx(6.0 + 1.0)
    assert weight_norm({}) == 0.0
