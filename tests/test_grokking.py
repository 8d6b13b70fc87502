"""Run events (docs/metrics.md) on synthetic curves whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grokmon.metrics.grokking import (
    OnlineCeilingDetector,
    crossing_step,
    excluded_loss_baseline,
    fsd_ceiling_offline,
    grok_times,
    lead,
    ols_slope,
    phase,
    sign_test,
)

pytestmark = pytest.mark.unit

STEPS = np.arange(0, 10_001, 100)


def ramp(t0: float, t1: float, lo: float, hi: float) -> np.ndarray:
    """lo before t0, hi after t1, linear in between (per evaluation step)."""
    return lo + (hi - lo) * np.clip((STEPS - t0) / (t1 - t0), 0.0, 1.0)


def synthetic_run() -> dict[str, np.ndarray]:
    """Memorised at 1500, FSD ramps 0.1 -> 0.8 over [3000, 4000] with p < alpha from 3300, groks at 6000."""
    return {
        "train_acc": ramp(0, 1500, 0.0, 1.0),
        "val_acc": ramp(5600, 6000, 0.02, 1.0),
        "fsd": ramp(3000, 4000, 0.1, 0.8),
        "p": np.where(STEPS >= 3300, 0.001, 0.4),
    }


def test_crossings() -> None:
    r = synthetic_run()
    assert crossing_step(STEPS, r["train_acc"], 0.99) == 1500
    times = grok_times(STEPS, r["val_acc"])
    # val = 0.02 + 0.98 (t - 5600) / 400: >= 0.5 from 5800, >= 0.95 and 0.99 only at 6000
    assert (times.t50, times.t95, times.t99) == (5800, 6000, 6000)
    assert crossing_step(STEPS, r["val_acc"], 1.1) is None
    with pytest.raises(ValueError):
        crossing_step(STEPS, r["val_acc"][:-1], 0.5)


def test_offline_ceiling() -> None:
    r = synthetic_run()
    # FSD_pre = 0.1, FSD_post = 0.8: threshold 0.73, reached at 3900 on the ramp
    t_fsd = fsd_ceiling_offline(STEPS, r["fsd"], r["p"], r["train_acc"], r["val_acc"], alpha=0.05)
    assert t_fsd == 3900
    assert lead(6000, t_fsd) == 2100


def test_offline_ceiling_needs_five_in_a_row_and_significance() -> None:
    """Four significant evaluations above the threshold are not a ceiling, five are; and a run of high FSD
    without p < alpha is not one either: the ceiling waits for significance."""
    r = synthetic_run()
    window = (STEPS >= 2000) & (STEPS <= 2300)  # 4 evaluations, after memorisation, before the ramp
    spiky, p_spiky = r["fsd"].copy(), r["p"].copy()
    spiky[window], p_spiky[window] = 0.9, 0.001
    # FSD_pre = median over [1500, 2500] = 0.1 still (4 of 11 raised); the spike is above 0.73 and significant
    assert fsd_ceiling_offline(STEPS, spiky, p_spiky, r["train_acc"], r["val_acc"]) == 3900
    five = (STEPS >= 2000) & (STEPS <= 2400)
    spiky[five], p_spiky[five] = 0.9, 0.001
    assert fsd_ceiling_offline(STEPS, spiky, p_spiky, r["train_acc"], r["val_acc"]) == 2000
    spiky_ns = r["fsd"].copy()
    spiky_ns[five] = 0.9  # five high evaluations at p = 0.4: not significant, not a ceiling
    assert fsd_ceiling_offline(STEPS, spiky_ns, r["p"], r["train_acc"], r["val_acc"]) == 3900
    late_p = np.where(STEPS >= 4500, 0.001, 0.4)
    assert fsd_ceiling_offline(STEPS, r["fsd"], late_p, r["train_acc"], r["val_acc"]) == 4500


def test_offline_ceiling_edge_cases() -> None:
    r = synthetic_run()
    never = np.zeros_like(STEPS, dtype=float)
    assert fsd_ceiling_offline(STEPS, r["fsd"], r["p"], never, r["val_acc"]) is None  # never memorised
    flat = np.full(STEPS.shape, 0.3)
    assert fsd_ceiling_offline(STEPS, flat, r["p"], r["train_acc"], r["val_acc"]) is None  # no rise
    # never grokked: FSD_post from the last 10% of the run
    assert fsd_ceiling_offline(STEPS, r["fsd"], r["p"], r["train_acc"], never) == 3900


def test_online_detector_fires_once_on_the_plateau() -> None:
    r = synthetic_run()
    det = OnlineCeilingDetector(alpha=0.05)
    fired = [int(s) for s, f, p in zip(STEPS, r["fsd"], r["p"]) if det.update(int(s), float(f), float(p))]
    # the last 10 evaluations are all on the plateau from 4900 on; before that the ramp's tail tilts the slope
    assert fired == [4900]
    assert det.fired and det.fired_at == 4900


def fired_steps(steps: np.ndarray, fsd: np.ndarray, p: np.ndarray) -> list[int]:
    """Every step at which a fresh detector's update returned True, fed the whole series."""
    det = OnlineCeilingDetector(alpha=0.05)
    fired = [int(s) for s, f, q in zip(steps, fsd, p) if det.update(int(s), float(f), float(q))]
    assert det.fired_at == (fired[0] if fired else None)
    return fired


def test_online_detector_needs_significance_and_a_full_window() -> None:
    """A flat significant series fires on the 10th evaluation (the first full window), once; the same
    series at p = 0.5 never fires; and it fires on the first significant evaluation once p drops."""
    steps = np.arange(30) * 100
    flat = np.full(30, 0.8)
    assert fired_steps(steps, flat, np.full(30, 0.001)) == [900]
    assert fired_steps(steps, flat, np.full(30, 0.5)) == []  # flat but never significant
    assert fired_steps(steps, flat, np.where(steps >= 2000, 0.001, 0.5)) == [2000]
    det = OnlineCeilingDetector(alpha=0.05)
    assert [det.update(i * 100, 0.8, 0.001) for i in range(11)] == [False] * 9 + [True, False]


def test_online_detector_waits_for_the_slope_and_ignores_a_fallen_fsd() -> None:
    """A significant FSD still rising faster than 0.01 per 1000 steps never fires; a rise that stops at
    step 2000 fires on the first window whose OLS slope is below 0.01/1000 (worked out below); an FSD that
    fell below 90 % of its running max never fires, however flat and significant."""
    steps = np.arange(40) * 100
    sig = np.full(40, 0.001)
    rising = 0.1 + 0.02 * steps / 1000  # 0.02 per 1000 steps throughout
    assert fired_steps(steps, rising, sig) == []
    # Rise 0.05 per 100 steps up to step 2000, flat at 1.1 after. The window ending at step t holds the
    # last 10 evaluations; its slope first falls below 0.01/1000 when 9 of them are on the plateau:
    # (t = 2800: one ramp point 0.05 below the plateau at the window's start gives slope 0.05 * 4.5 /
    # 8250 * 1000 ~ 0.0273; t = 2900: all flat, slope 0). Before that the slope is larger.
    plateau = np.minimum(0.1 + 0.05 * steps / 100, 1.1)
    window_slopes = [np.polyfit(steps[i - 9:i + 1], plateau[i - 9:i + 1], 1)[0] * 1000 for i in range(9, 40)]
    first = 9 + next(i for i, s in enumerate(window_slopes) if s < 0.01)
    assert fired_steps(steps, plateau, sig) == [int(steps[first])] == [2900]
    # Peak 0.9 at step 900 (not significant there), then flat at 0.5 with p < alpha: 0.5 < 0.9 * 0.9
    fallen = np.where(steps == 900, 0.9, 0.5)
    assert fired_steps(steps, fallen, np.where(steps >= 1000, 0.001, 0.5)) == []
    # the same drop to 0.85 (>= 0.81) fires as soon as the window's slope allows
    shallow = np.where(steps == 900, 0.9, 0.85)
    assert fired_steps(steps, shallow, np.where(steps >= 1000, 0.001, 0.5)) != []


def test_ols_slope() -> None:
    x = np.arange(10) * 100.0
    assert ols_slope(x, 3 + 0.002 * x) == pytest.approx(0.002)
    assert ols_slope(np.ones(4), np.arange(4.0)) == 0.0


def test_excluded_loss_baseline() -> None:
    train_acc = ramp(0, 1500, 0.0, 1.0)
    loss = np.where(STEPS < 1500, 2.0 - STEPS / 1000, 0.02)  # falls while memorising, floor 0.02
    loss = np.where(STEPS > 3000, 0.02 + 0.01 * (STEPS - 3000) / 100, loss)  # circuit formation
    loss[STEPS == 2000] = 0.5  # a one-evaluation spike is not a rise
    # level = max(2 * 0.02, 0.02 + 0.01) = 0.04; 0.05 > 0.04 first at 3300
    assert excluded_loss_baseline(STEPS, loss, train_acc) == 3300
    assert excluded_loss_baseline(STEPS, np.full(STEPS.shape, 0.02), train_acc) is None
    assert excluded_loss_baseline(STEPS, loss, np.zeros(STEPS.shape)) is None


def test_excluded_loss_baseline_skips_non_finite_values() -> None:
    """A diverged checkpoint's NaN (or inf) must neither poison the running minimum nor count as a rise."""
    train_acc = np.ones(STEPS.shape)
    loss = np.where(STEPS > 3000, 0.02 + 0.01 * (STEPS - 3000) / 100, 0.02)  # level 0.04, first above at 3300
    early = loss.copy()
    early[STEPS == 1000] = np.nan  # before the rise: the answer is unchanged
    assert excluded_loss_baseline(STEPS, early, train_acc) == 3300
    inside = loss.copy()
    inside[STEPS == 3500] = np.inf  # inside 3300's 5-evaluation window: the rise starts after it
    assert excluded_loss_baseline(STEPS, inside, train_acc) == 3600
    flat = np.full(STEPS.shape, 0.02)
    flat[STEPS >= 4000] = np.nan  # diverged: NaN is not a rise
    assert excluded_loss_baseline(STEPS, flat, train_acc) is None


def test_lead_and_phase() -> None:
    assert lead(None, 100) is None and lead(6000, None) is None and lead(6000, 6500) == -500
    assert phase(0.5, 0.01, False, False) == "memorisation"
    assert phase(1.0, 0.05, False, False) == "circuit formation"
    assert phase(1.0, 0.3, True, False) == "cleanup"
    assert phase(1.0, 0.97, True, True) == "generalised"


def test_sign_test() -> None:
    assert sign_test([1722] * 9) == (9, 9, pytest.approx(2 / 2 ** 9))
    n_pos, n, p = sign_test([500, -200, 0, 800, 300])  # the zero is dropped
    assert (n_pos, n) == (3, 4)
    assert p == pytest.approx(min(1.0, 2 * sum(math.comb(4, i) for i in range(3, 5)) / 16))
    assert sign_test([1, -1, 2, -2])[2] == 1.0
    assert sign_test([]) == (0, 0, 1.0)
