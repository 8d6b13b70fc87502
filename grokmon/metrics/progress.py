"""Nanda's progress measures (docs/metrics.md): key frequencies, restricted / excluded loss, Gini, weight norm.

Pure functions on tensors and a FourierBasis; knows nothing about the model class, training or the UI.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from grokmon.fourier import FourierBasis, fourier_coefficients

KEY_FREQ_RATIO = 3.0  # a key frequency holds > 3x the uniform share 1/K


def key_frequencies(share: torch.Tensor | np.ndarray, ratio: float = KEY_FREQ_RATIO) -> list[int]:
    """Frequencies (1-based, ascending) whose share exceeds ratio / K.

    A multiple of the uniform share is scale-free across p: at random init every share is ~1/K (a sum of
    2*d chi-squares), so none qualify; a trained model's handful of key frequencies hold ~10-20% each.
    An empty list means "no key frequencies yet".
    """
    s = np.asarray(torch.as_tensor(share).detach().cpu(), dtype=np.float64).reshape(-1)
    total = s.sum()
    if total <= 0:
        return []
    s = s / total
    return [int(i) + 1 for i in np.flatnonzero(s > ratio / s.size)]


def answer_directions(basis: FourierBasis, labels: torch.Tensor, freqs: list[int],
                      constant: bool) -> torch.Tensor:  # [n_pairs, R] float64, orthonormal columns
    """Grid directions cos / sin(w_k * x(c)) for each key k, where c = labels is the answer of each pair.

    x(c) is c for the additive basis (so cos(w_k (a+b)) for add, cos(w_k (a-b)) for sub) and the discrete
    log of c for the multiplicative one (dlog a + dlog b for mul, dlog a - dlog b for div). Building them
    from the answer makes the pair order irrelevant. Columns are orthonormalised (QR): over the full grid
    they already are, up to the factor sqrt(n_pairs / n).
    """
    labels = torch.as_tensor(labels).long().cpu()
    col = torch.full((basis.p,), -1, dtype=torch.long)
    col[basis.tokens] = torch.arange(basis.n)  # token id -> basis column
    pos = col[labels]
    if bool((pos < 0).any()):
        raise ValueError(f"labels contain tokens outside the {basis.kind} basis (e.g. 0 for mul/div)")
    rows = ([0] if constant else []) + basis.key_rows(sorted(set(freqs)))
    if not rows:
        return torch.zeros(len(labels), 0, dtype=torch.float64)
    D = basis.matrix[rows][:, pos].T  # [n_pairs, R]
    Q, _ = torch.linalg.qr(D)
    return Q


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy in float64 (float32 log-softmax floors near 1e-7)."""
    logp = torch.log_softmax(logits.to(torch.float64), dim=-1)
    return float(-logp.gather(1, labels.long()[:, None]).mean())


def _project(logits: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:  # [n_pairs, p]
    """Per answer class, the projection of the logit grid onto span(Q)."""
    Q = Q.to(logits.device)
    return Q @ (Q.T @ logits)


def restricted_loss(logits: torch.Tensor, labels: torch.Tensor, basis: FourierBasis,
                    key_freqs: list[int]) -> float:
    """Loss on ALL pairs of the logits kept to span{1, cos/sin(w_k x(c)) : k in key_freqs} per class.

    logits [n_pairs, p] (answer classes only), labels [n_pairs]; pairs in any order, all of them.
    """
    L = torch.as_tensor(logits).detach().to(torch.float64)
    Q = answer_directions(basis, labels, key_freqs, constant=True)
    return _ce(_project(L, Q), torch.as_tensor(labels).to(L.device))


def excluded_loss(logits: torch.Tensor, labels: torch.Tensor, basis: FourierBasis,
                  key_freqs: list[int], train_mask: torch.Tensor) -> float:
    """Loss on TRAIN pairs of the logits with the key directions (not the constant) subtracted.

    logits [n_pairs, p] over ALL pairs (the projection is over the full grid), labels [n_pairs],
    train_mask [n_pairs] bool (or a long tensor of train indices).
    """
    L = torch.as_tensor(logits).detach().to(torch.float64)
    labels = torch.as_tensor(labels)
    Q = answer_directions(basis, labels, key_freqs, constant=False)
    rest = L - _project(L, Q)
    idx = torch.as_tensor(train_mask).to(L.device)
    return _ce(rest[idx], labels.to(L.device)[idx])


def gini(x: torch.Tensor | np.ndarray) -> float:
    """Hurley-Rickard Gini of a non-negative vector: 0 when uniform, (n-1)/n when one-hot; 0 if all zero.

    G = 1 - 2 sum_i (x_(i) / ||x||_1) (n - i + 1/2) / n over the ascending order x_(1) <= ... <= x_(n).
    """
    v = np.sort(np.asarray(torch.as_tensor(x).detach().cpu(), dtype=np.float64).reshape(-1))
    if v.size == 0:
        raise ValueError("gini of an empty vector")
    if v[0] < 0:
        raise ValueError("gini needs non-negative values")
    total = v.sum()
    if total <= 0:
        return 0.0
    n = v.size
    i = np.arange(1, n + 1)
    return float(1.0 - 2.0 * np.sum((v / total) * (n - i + 0.5) / n))


def fourier_norms(basis: FourierBasis, M: torch.Tensor) -> torch.Tensor:  # [n] float64
    """Norm of each basis row of F @ M[tokens] (constant row included, as in Nanda's code)."""
    return fourier_coefficients(basis, M).norm(dim=1).cpu()


def fourier_gini(basis: FourierBasis, M: torch.Tensor) -> float:
    """Gini of the Fourier component norms of a token-axis map M [rows, d] (W_E, or W_L.T)."""
    return gini(fourier_norms(basis, M))


def weight_norm(params: Mapping[str, torch.Tensor]) -> float:
    """Total sum of squared weights (biases included), accumulated in float64. One device sync."""
    total = sum((t.detach().to(torch.float64) ** 2).sum() for t in params.values())
    return float(total) if params else 0.0
