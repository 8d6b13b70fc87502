"""The fork analysis on synthetic branches whose answer is known: fit, R^2, monotonicity, stability, CV."""

from __future__ import annotations

import math

import pytest

from grokmon.experiments.fork import analyse_branch, analyse_fork, parse_wd_list, resolve_fork_step
from grokmon.errors import ConfigError
from grokmon.metrics.forkfit import branch_stability, coefficient_of_variation, fit_inverse, spec_stability

pytestmark = pytest.mark.unit


def test_exact_inverse_law_gives_c_and_r2_one() -> None:
    lams = [0.5, 1, 1.5, 2, 3, 5]
    fit = fit_inverse(lams, [1200 / lam for lam in lams])
    assert fit.c == pytest.approx(1200) and fit.r2 == pytest.approx(1.0) and fit.monotone and fit.n == 6


def test_fit_is_least_squares_through_the_origin_on_inverse_lambda() -> None:
    # x = 1/lambda = 1, 2; y = 1, 3: C = (1 + 6) / (1 + 4) = 1.4; residuals -0.4, 0.2; SS_tot = 2
    fit = fit_inverse([1.0, 0.5], [1.0, 3.0])
    assert fit.c == pytest.approx(1.4)
    assert fit.r2 == pytest.approx(1 - (0.16 + 0.04) / 2.0)
    assert fit.monotone


def test_flat_or_rising_dt_is_not_monotone_and_fits_badly() -> None:
    fit = fit_inverse([1, 2, 4], [500, 500, 600])
    assert not fit.monotone and fit.r2 is not None and fit.r2 < 0
    flat = fit_inverse([1, 2], [500, 500])  # equal dt: no variance to explain, and not falling
    assert flat.r2 is None and not flat.monotone and flat.c == pytest.approx((500 + 250) / (1 + 0.25))
    assert fit_inverse([1.0], [300.0]).r2 is None  # one point: no R^2


def test_fit_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        fit_inverse([0.0, 1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        fit_inverse([], [])


def test_spec_literal_stability_rule() -> None:
    assert spec_stability(1e-3, [1.0, 1.0], [1e-3, 5e-3]).stable
    dip = spec_stability(1e-3, [1.0, 0.98], [1e-3, 2e-3])
    assert not dip.stable and dip.min_train_acc == 0.98 and "train acc" in dip.reason
    spike = spec_stability(1e-3, [1.0, 1.0], [1e-3, 2e-2])
    assert not spike.stable and spike.max_loss_ratio == pytest.approx(20) and "10x" in spike.reason
    assert not spec_stability(1e-3, [], []).stable
    assert not spec_stability(1e-3, [1.0], [math.nan]).stable


def test_our_stability_rule_ignores_one_evaluation_dips_and_spikes_but_not_sustained_ones() -> None:
    steps = list(range(20, 401, 20))
    one_dip = [1.0] * 20
    one_dip[5] = 0.91  # a single evaluation, as Adam's loss spikes give (the unchanged branch has them too)
    spike_once = [1e-3] * 20
    spike_once[5] = 0.5  # 50x the pre-fork level, once
    out = branch_stability(1e-2, steps, one_dip, spike_once)
    assert out.stable and out.dip_steps == 0 and out.spike_steps == 0 and out.max_loss_ratio == pytest.approx(50)
    short = [1.0] * 20
    short[5:10] = [0.9] * 5  # steps 120..200: 80 steps below 0.99
    assert branch_stability(1e-2, steps, short, [1e-3] * 20).stable
    long = [1.0] * 20
    long[5:11] = [0.9] * 6  # steps 120..220: 100 steps below 0.99
    out = branch_stability(1e-2, steps, long, [1e-3] * 20)
    assert not out.stable and "train acc below 0.99 for 100 steps" in out.reason and out.min_train_acc == 0.9
    assert out.dip_steps == 100
    loss = [1e-3] * 20
    loss[10:16] = [0.2] * 6  # 20x the pre-fork level for 100 steps
    out = branch_stability(1e-2, steps, [1.0] * 20, loss)
    assert not out.stable and out.spike_steps == 100 and "10x its pre-fork value for 100 steps" in out.reason
    assert branch_stability(1e-2, steps, [1.0] * 20, [9e-2] * 20).stable  # below 10x the level
    assert not branch_stability(1e-2, steps, [1.0] * 20, [1e-3] * 19 + [math.nan]).stable


def test_coefficient_of_variation() -> None:
    assert coefficient_of_variation([2.0, 4.0]) == pytest.approx(1 / 3)
    assert coefficient_of_variation([5.0, 5.0, 5.0]) == 0.0
    assert coefficient_of_variation([1.0]) is None


def _rows(fork: int, t_grok: int | None, end: int, loss_after: float = 1e-6, acc_after: float = 1.0) -> list[dict]:
    rows = []
    for step in range(0, end + 1, 100):
        val = 1.0 if t_grok is not None and step >= t_grok else 0.3
        rows.append({"step": step, "val_acc": val, "train_acc": 1.0 if step <= fork else acc_after,
                     "train_loss": 1e-6 if step <= fork else loss_after, "weight_norm": 400.0})
    return rows


def test_branch_line_and_fit_from_rows() -> None:
    branches = [analyse_branch(1000, lam, _rows(1000, 1000 + int(round(600 / lam, -2)), 3000)) for lam in (0.5, 1, 2)]
    assert [b["dt"] for b in branches] == [1200, 600, 300]
    assert all(b["stable"] and b["mem_norm"] == pytest.approx(20.0) for b in branches)
    fit = analyse_fork(1000, branches)
    assert fit["n_fit"] == 3 and fit["C"] == pytest.approx(600) and fit["r2"] == pytest.approx(1.0)
    assert fit["monotone"] and fit["mem_norm_cv"] == 0.0 and fit["excluded"] == []


def test_unstable_and_ungrokked_branches_are_left_out_of_the_fit() -> None:
    good = [analyse_branch(1000, lam, _rows(1000, 1000 + int(600 / lam), 3000)) for lam in (1, 2)]
    spiky = analyse_branch(1000, 5, _rows(1000, 1100, 3000, loss_after=1e-3))  # 1000x the pre-fork level
    never = analyse_branch(1000, 0.5, _rows(1000, None, 3000))
    assert not spiky["stable"] and not spiky["stable_spec"] and never["dt"] is None
    fit = analyse_fork(1000, good + [spiky, never])
    assert fit["n_fit"] == 2 and sorted(fit["excluded"]) == [0.5, 5]


def test_fork_step_rules() -> None:
    rows = [{"step": s} for s in range(0, 5001, 100)]
    ev = {"t_grok": 4000, "t_fsd": 3000, "t_fsd_online": 2500}
    assert resolve_fork_step(rows, ev, "fsd-ceiling").step == 3000
    late = resolve_fork_step(rows, {**ev, "t_fsd": 4200}, "fsd-ceiling")
    assert late.step == 2500 and "online" in late.rule
    with pytest.raises(ConfigError, match="no FSD ceiling before t_grok"):
        resolve_fork_step(rows, {"t_grok": 4000, "t_fsd": 4200, "t_fsd_online": None}, "fsd-ceiling")
    assert resolve_fork_step(rows, ev, "1234").step == 1234
    with pytest.raises(ConfigError, match="not before the run's t_grok"):
        resolve_fork_step(rows, ev, "4000")
    with pytest.raises(ConfigError, match="expected a step in 1..5000"):
        resolve_fork_step(rows, ev, "9000")
    with pytest.raises(ConfigError, match="'fsd-ceiling' or a step"):
        resolve_fork_step(rows, ev, "ceiling")


def test_wd_list_parsing() -> None:
    assert parse_wd_list("0.5,1,2") == (0.5, 1.0, 2.0)
    for bad in ("1,x", "1,-2", "0", "1,1", "nan"):
        with pytest.raises(ConfigError, match="--wd"):
            parse_wd_list(bad)


def test_pre_fork_level_is_the_highest_loss_of_the_1000_steps_before_the_fork() -> None:
    rows = _rows(2000, 2600, 4000)
    for r in rows:
        if r["step"] == 1200:
            r["train_loss"] = 5e-5  # inside [1000, 2000]: sets the level
        if r["step"] == 500:
            r["train_loss"] = 1.0  # outside the window: ignored
        if r["step"] == 2300:
            r["train_loss"] = 4e-4  # 8x the level, 400x the loss at the fork
    line = analyse_branch(2000, 1.0, rows)
    assert line["stable"] and line["max_loss_ratio"] == pytest.approx(8)
    assert not line["stable_spec"]
