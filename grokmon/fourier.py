"""Fourier bases over the token axis (additive, and multiplicative via discrete logs) and spectra (docs/metrics.md).

Pure functions on tensors; knows nothing about models, training, configs or the UI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from grokmon.config import is_prime
from grokmon.errors import GrokmonError

ADDITIVE_OPS = ("add", "sub")
MULTIPLICATIVE_OPS = ("mul", "div")


@dataclass(frozen=True)
class FourierBasis:
    """An orthonormal real Fourier basis acting on the token ids in `tokens`, in that order.

    Row 0 is the constant; rows 2k-1 / 2k are cos / sin of frequency k (1-based), k = 1..n_freq.
    When n is even the Nyquist frequency k = n/2 has only its cos row (index n-1): its sin row would be
    identically zero, so it is dropped and the basis stays square and orthonormal.
    """

    kind: str  # "additive" | "multiplicative"
    p: int
    matrix: torch.Tensor  # [n, n] float64, rows orthonormal
    tokens: torch.Tensor  # [n] long: the token id that basis column j acts on
    n_freq: int  # K
    row_freq: torch.Tensor  # [n] long: the frequency of each row (0 for the constant row)

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])

    def rows(self, k: int) -> list[int]:
        """Row indices of frequency k (1-based): [2k-1, 2k], or [2k-1] for the Nyquist frequency."""
        if not 1 <= k <= self.n_freq:
            raise ValueError(f"frequency {k} outside 1..{self.n_freq}")
        return [r for r in (2 * k - 1, 2 * k) if r < self.n]

    def key_rows(self, freqs: list[int]) -> list[int]:
        """Row indices of all the given frequencies, in the order given."""
        return [r for k in freqs for r in self.rows(k)]

    @property
    def has_nyquist(self) -> bool:
        """True when the top frequency k = n/2 has a cos row only (even n: always for mul/div)."""
        return self.n % 2 == 0 and self.n_freq == self.n // 2

    def grid_positions(self) -> torch.Tensor:  # [n] long
        """Where each basis column's token sits in the op's ascending token range (0 or 1 based ids)."""
        return self.tokens - int(self.tokens.min())


def real_dft_basis(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal real DFT basis of length n and each row's frequency.

    Returns (matrix [n, n] float64, row_freq [n] long). Row 0 = 1/sqrt(n); rows 2k-1, 2k = normalised
    cos, sin(2 pi k x / n). For even n the Nyquist row (k = n/2) is cos(pi x) / sqrt(n), with no sin row.
    """
    if n < 1:
        raise ValueError(f"basis length must be >= 1, got {n}")
    x = torch.arange(n, dtype=torch.float64)
    rows = [torch.full((n,), 1.0 / math.sqrt(n), dtype=torch.float64)]
    freqs = [0]
    for k in range(1, n // 2 + 1):
        angle = 2 * math.pi * k * x / n
        if 2 * k == n:  # Nyquist: sin(pi x) == 0 at every integer x
            rows.append(torch.cos(angle) / math.sqrt(n))
            freqs.append(k)
        else:
            rows += [torch.cos(angle) * math.sqrt(2.0 / n), torch.sin(angle) * math.sqrt(2.0 / n)]
            freqs += [k, k]
    return torch.stack(rows), torch.tensor(freqs, dtype=torch.long)


def _prime_factors(n: int) -> list[int]:
    out, d = [], 2
    while d * d <= n:
        if n % d == 0:
            out.append(d)
            while n % d == 0:
                n //= d
        d += 1
    return out + ([n] if n > 1 else [])


def primitive_root(p: int) -> int:
    """The smallest generator g of the multiplicative group mod the prime p."""
    if not is_prime(p):
        raise GrokmonError(f"p = {p}: a primitive root needs a prime p")
    if p == 2:
        return 1
    factors = _prime_factors(p - 1)
    for g in range(2, p):
        if all(pow(g, (p - 1) // r, p) != 1 for r in factors):
            return g
    raise AssertionError("unreachable: every prime has a primitive root")


def discrete_log_order(p: int) -> list[int]:
    """Tokens 1..p-1 ordered by discrete log base g: [g^0, g^1, ..., g^(p-2)] mod p."""
    g = primitive_root(p)
    return [pow(g, i, p) for i in range(p - 1)]


def additive_basis(p: int) -> FourierBasis:
    """Basis over tokens 0..p-1 (matrix [p, p]); K = (p-1)//2 for odd p."""
    if p < 2:
        raise GrokmonError(f"p = {p}: need p >= 2")
    matrix, row_freq = real_dft_basis(p)
    return FourierBasis("additive", p, matrix, torch.arange(p), p // 2, row_freq)


def multiplicative_basis(p: int) -> FourierBasis:
    """Basis over tokens 1..p-1 in discrete-log order (matrix [p-1, p-1]); K = (p-1)/2, Nyquist cos-only."""
    tokens = torch.tensor(discrete_log_order(p), dtype=torch.long)
    matrix, row_freq = real_dft_basis(p - 1)
    return FourierBasis("multiplicative", p, matrix, tokens, (p - 1) // 2, row_freq)


def basis_for_op(op: str, p: int) -> FourierBasis:
    """Additive basis for add/sub, multiplicative (discrete-log) basis for mul/div."""
    if op in ADDITIVE_OPS:
        return additive_basis(p)
    if op in MULTIPLICATIVE_OPS:
        return multiplicative_basis(p)
    raise GrokmonError(f"op {op!r}: expected one of {ADDITIVE_OPS + MULTIPLICATIVE_OPS}")


def _as_2d(M: torch.Tensor) -> torch.Tensor:
    M = torch.as_tensor(M).detach().to(torch.float64)
    return M.unsqueeze(-1) if M.ndim == 1 else M


def fourier_coefficients(basis: FourierBasis, M: torch.Tensor) -> torch.Tensor:  # [n, d]
    """F @ M[tokens] for a token-axis map M [rows, d] (or [rows]) indexed by token id; rows > max token."""
    M = _as_2d(M)
    if M.shape[0] <= int(basis.tokens.max()):
        raise ValueError(f"token-axis map has {M.shape[0]} rows; basis needs token ids up to "
                         f"{int(basis.tokens.max())}")
    F = basis.matrix.to(M.device)
    return F @ M[basis.tokens.to(M.device)]


def _energy_by_freq(row_energy: torch.Tensor, freq: torch.Tensor, n_freq: int) -> torch.Tensor:  # [K]
    out = torch.zeros(n_freq + 1, dtype=torch.float64, device=row_energy.device)
    out.index_add_(0, freq.to(row_energy.device), row_energy)
    return out[1:].cpu()


# The Nyquist frequency of an even-length basis has one row where the others have two (1-D) and 3 cells of
# {0, N}^2 minus (0, 0) where the others have 8 of {0, 2k-1, 2k}^2 minus (0, 0) (2-D). Each row / cell
# carries the same expected energy under isotropic noise, so these weights equalise the frequencies' means.
NYQUIST_WEIGHT_1D = 2.0
NYQUIST_WEIGHT_2D = 8.0 / 3.0


def _weight_nyquist(basis: FourierBasis, e: torch.Tensor, weight: float) -> torch.Tensor:  # [K]
    if basis.has_nyquist:
        e[-1] = e[-1] * weight
    return e


def freq_energy_1d(basis: FourierBasis, M: torch.Tensor) -> torch.Tensor:  # [K] float64
    """e(k) = ||row 2k-1 of F@M||^2 + ||row 2k||^2 for a token-axis map M [rows, d] indexed by token id.

    W_E (d_vocab rows) and W_U.T (answer classes) can be passed whole: only basis.tokens rows are read.
    The cos-only Nyquist k (mul/div) counts x2, one row for two: isotropic noise then gives every k equal mean.
    """
    coeff = fourier_coefficients(basis, M)
    e = _energy_by_freq((coeff ** 2).sum(dim=1), basis.row_freq, basis.n_freq)
    return _weight_nyquist(basis, e, NYQUIST_WEIGHT_1D)


def freq_energy_2d(basis: FourierBasis, A: torch.Tensor) -> torch.Tensor:  # [K] float64
    """Energy per frequency of a grid tensor over all (a, b) pairs of the op's token range.

    A is [n*n, d] (or [n, n, d]) with row index i*n + j for the i-th and j-th operand in ASCENDING token
    order: a, b in 0..p-1 for add/sub (row a*p + b), a, b in 1..p-1 for mul/div (row (a-1)*(p-1) + (b-1)),
    i.e. the dataset's grid order. Rows are reordered by discrete log here. The grid is centred, then
    X = einsum('ia,jb,abd->ijd', F, F, A) and e(k) sums ||X[i, j]||^2 over cells {0, 2k-1, 2k}^2 minus (0, 0).
    The cos-only Nyquist k (mul/div) counts x8/3, 3 cells for 8: isotropic noise then gives every k equal mean.
    """
    n = basis.n
    A = torch.as_tensor(A).detach().to(torch.float64)
    if A.ndim == 2:
        if A.shape[0] != n * n:
            raise ValueError(f"grid tensor has {A.shape[0]} rows, expected {n * n} "
                             f"({basis.kind} basis, p={basis.p})")
        A = A.reshape(n, n, -1)
    if A.shape[:2] != (n, n):
        raise ValueError(f"grid tensor shape {tuple(A.shape)}, expected [{n * n}, d] or [{n}, {n}, d]")
    pos = basis.grid_positions().to(A.device)
    A = A[pos][:, pos]  # [n, n, d] in basis (discrete-log) order
    A = A - A.mean(dim=(0, 1), keepdim=True)
    F = basis.matrix.to(A.device)
    # Same as einsum('ia,jb,abd->ijd', F, F, A), one axis at a time: torch's 3-operand einsum (without
    # opt_einsum) can build the [n, n, n, n] outer product of F with itself first: ~1 s at p = 113.
    X = torch.matmul(F, (F @ A.reshape(n, -1)).reshape(A.shape))  # [n, n, d]: a -> i, then b -> j
    cell = (X ** 2).sum(dim=2)  # [n, n]
    fi = basis.row_freq.to(A.device)[:, None].expand(n, n)
    fj = basis.row_freq.to(A.device)[None, :].expand(n, n)
    keep = (fi == fj) | (fi == 0) | (fj == 0)  # cells in {0, 2k-1, 2k}^2 for a single k
    freq = torch.where(keep, torch.maximum(fi, fj), torch.zeros_like(fi))
    e = _energy_by_freq(cell.reshape(-1), freq.reshape(-1), basis.n_freq)
    return _weight_nyquist(basis, e, NYQUIST_WEIGHT_2D)


def spectrum_share(e: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:  # [K]
    """Energies normalised to fractions summing to 1. An all-zero spectrum carries no information: uniform."""
    total = float(e.sum())
    if total <= 0.0:
        return e * 0 + 1.0 / e.shape[-1]
    return e / total


def top_k(share: torch.Tensor | np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    """The k largest shares as (frequency 1-based, share), largest first; ties go to the lower frequency."""
    s = np.asarray(torch.as_tensor(share).detach().cpu(), dtype=np.float64)
    order = np.argsort(-s, kind="stable")[: max(0, k)]
    return [(int(i) + 1, float(s[i])) for i in order]
