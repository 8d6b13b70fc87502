"""FSD, the Frequency Synchronization Degree (docs/metrics.md): input-side spectra vs the output-side spectrum.

Pure numpy on spectra the caller has already extracted; knows nothing about models or bases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATISTICS = ("overlap", "pearson")
_EPS = 1e-12


@dataclass(frozen=True)
class FSDResult:
    fsd: float  # (S - mu0) / (1 - mu0); 0.0 when 1 - mu0 ~ 0
    p_value: float  # (1 + #{S_null >= S}) / (n_perm + 1)
    z: float  # (S - mu0) / sd0; 0.0 when sd0 ~ 0
    s: float  # the observed statistic (mu0 when the output spectrum is flat: no information)
    mu0: float  # the null's exact mean: m / K (overlap), 0 (Pearson)
    sd0: float  # null std (ddof 0)
    sync: bool  # p_value < alpha
    n_perm: int


def _shares(x: np.ndarray) -> np.ndarray:  # [..., K]
    """Rows normalised to sum 1 (idempotent on shares); an all-zero or negative-sum row becomes uniform."""
    x = np.asarray(x, dtype=np.float64)
    total = x.sum(axis=-1, keepdims=True)
    uniform = np.full_like(x, 1.0 / x.shape[-1])
    return np.where(total > 0, x / np.where(total > 0, total, 1.0), uniform)


def top_mask(pi: np.ndarray, m: int) -> np.ndarray:  # [..., K] bool
    """Top-m frequency set of each row as a mask; ties go to the lower frequency (stable sort)."""
    order = np.argsort(-pi, axis=-1, kind="stable")[..., :m]
    mask = np.zeros(pi.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask


def _overlap(pi_in: np.ndarray, mask_in: np.ndarray, pi_out: np.ndarray, mask_out: np.ndarray) -> np.ndarray:
    """Symmetric top-m overlap of every output row with every input row, averaged over inputs.

    pi_in, mask_in [C, K]; pi_out, mask_out [N, K] -> [N].
    a(c, o) = sum pi_c over T_c & T_o / sum pi_c over T_c, averaged with a(o, c).
    """
    w_in = pi_in * mask_in  # [C, K]
    w_out = pi_out * mask_out  # [N, K]
    a_in = (mask_out.astype(np.float64) @ w_in.T) / w_in.sum(axis=1)  # [N, C]
    a_out = (w_out @ mask_in.T.astype(np.float64)) / w_out.sum(axis=1, keepdims=True)  # [N, C]
    return (0.5 * (a_in + a_out)).mean(axis=1)


def _standardise(pi: np.ndarray) -> np.ndarray:  # [..., K]
    """Rows centred and scaled so that a dot product / K is the Pearson r; constant rows become 0."""
    centred = pi - pi.mean(axis=-1, keepdims=True)
    sd = centred.std(axis=-1, keepdims=True)
    return np.where(sd > _EPS, centred / np.where(sd > _EPS, sd, 1.0), 0.0)


def null_mean(statistic: str, n_freq: int, m: int = 5) -> float:
    """The exact mean of the permutation null, mu0: m / K for the top-m overlap, 0 for Pearson.

    Overlap: a uniform relabelling of the output side makes its top-m set a uniform m-subset of the K
    frequencies (top_mask always picks exactly m, ties included), so each of an input component's top-m
    frequencies lands in it with probability m / K: E[a(c, o)] = m / K. Each output top-m frequency
    lands in the input's fixed top-m set with the same probability: E[a(o, c)] = m / K. So the
    symmetrised mean over components is m / K too (1 when m >= K: every set is everything).
    Pearson: a relabelled standardised output row has mean 0 at every position, so E[r] = 0.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic {statistic!r}: expected one of {STATISTICS}")
    if n_freq < 1:
        raise ValueError(f"need K >= 1 frequencies, got {n_freq}")
    if statistic == "pearson":
        return 0.0
    if m < 1:
        raise ValueError(f"top-m needs m >= 1, got {m}")
    return min(int(m), n_freq) / n_freq


def statistic_and_null(input_spectra: np.ndarray, output_spectrum: np.ndarray, perms: np.ndarray, *,
                       statistic: str = "overlap", m: int = 5) -> tuple[float, np.ndarray]:
    """The observed statistic S and its value under each permutation of the output labels.

    input_spectra [C, K], output_spectrum [K] (energies or shares); perms [N, K], row n the permuted
    output's frequency j reads the original frequency perms[n, j]. Returns (S, null [N]).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic {statistic!r}: expected one of {STATISTICS}")
    pi_in = _shares(np.atleast_2d(input_spectra))  # [C, K]
    pi_out = _shares(np.asarray(output_spectrum).reshape(-1))  # [K]
    C, K = pi_in.shape
    if pi_out.shape[0] != K or C == 0 or K == 0:
        raise ValueError(f"spectra shapes {pi_in.shape} and {pi_out.shape}: need [C>=1, K] and [K]")
    perms = np.asarray(perms)
    if perms.ndim != 2 or perms.shape[1] != K:
        raise ValueError(f"permutations of shape {perms.shape}: need [N, {K}]")
    if statistic == "overlap":
        if m < 1:
            raise ValueError(f"top-m needs m >= 1, got {m}")
        m = min(int(m), K)
        mask_in = top_mask(pi_in, m)
        mask_out = top_mask(pi_out, m)
        # A permuted spectrum's top-m set is the relabelled original set, so ties resolve the same way.
        s = float(_overlap(pi_in, mask_in, pi_out[None], mask_out[None])[0])
        null = _overlap(pi_in, mask_in, pi_out[perms], mask_out[perms])  # [N]
    else:
        z_in = _standardise(pi_in)  # [C, K]
        z_out = _standardise(pi_out)  # [K]
        s = float((z_in @ z_out).mean() / K)
        null = (z_out[perms] @ z_in.T).mean(axis=1) / K  # [N]
    return s, null


def fsd(input_spectra: np.ndarray, output_spectrum: np.ndarray, *, n_perm: int = 1000,
        seed: int | np.random.Generator = 0, statistic: str = "overlap", m: int = 5,
        alpha: float = 0.05) -> FSDResult:
    """FSD of input-side spectra [C, K] against the output-side spectrum [K] (energies or shares).

    The null draws n_perm permutations of the frequency labels, each applied to the OUTPUT spectrum only
    (the input side is left alone: its components inherit the embedding's spectrum, so permuting them
    independently is miscalibrated at init). All permutations are one batched array op.
    mu0 is the null's exact mean (`null_mean`), not the draws' mean, so FSD carries no Monte Carlo noise;
    p, sd0 and z come from the draws.
    Cost: O(n_perm * K * (log K + C)); 1000 x 56 x 5 takes about a millisecond.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic {statistic!r}: expected one of {STATISTICS}")
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    K = int(np.asarray(output_spectrum).size)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, K)), axis=1)  # [N, K]; row n is a uniform permutation
    s, null = statistic_and_null(input_spectra, output_spectrum, perms, statistic=statistic, m=m)

    mu0 = null_mean(statistic, K, m)
    sd0 = float(null.std())
    # Ties at S count against synchronisation; the tolerance absorbs float noise in equal sums.
    p_value = (1.0 + float(np.sum(null >= s - 1e-12))) / (n_perm + 1.0)
    if np.ptp(_shares(np.asarray(output_spectrum).reshape(-1))) <= _EPS:
        # A flat output spectrum (all-zero included) has no frequency labels to permute: its top-m set is
        # the tie-break's, which inputs with ties share (overlap 1, p ~ 0.005 for two zero spectra). No
        # information: S at the null mean, as Pearson's constant-row rule gives.
        s, sd0, p_value = mu0, 0.0, 1.0
    fsd_value = (s - mu0) / (1.0 - mu0) if 1.0 - mu0 > _EPS else 0.0
    z = (s - mu0) / sd0 if sd0 > _EPS else 0.0
    return FSDResult(fsd=float(fsd_value), p_value=p_value, z=float(z), s=s, mu0=mu0, sd0=sd0,
                     sync=bool(p_value < alpha), n_perm=int(n_perm))
