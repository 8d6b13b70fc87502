"""The fork analysis on synthetic numbers whose answer is known by hand: the stability window and pre-fork
level, the three fits, the Student t quantile, seed averaging, and fork.json's branch lines and fit sections."""

from __future__ import annotations

import math
import random

import pytest

from grokmon.errors import ConfigError
from grokmon.experiments.fork import (
    analyse_branch, analyse_fork, exclusion_reason, fit_lines, parse_wd_list, resolve_fork_step, seed_averaged_fits,
)
from grokmon.metrics.forkfit import (
    branch_stability, coefficient_of_variation, fit_intercept, fit_inverse, fit_power, law_fits, pre_fork_level,
    seed_average, t_cdf, t_quantile,
)

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------------------------------------
# the through-origin fit


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


def test_fits_refuse_bad_input() -> None:
    for fit in (fit_inverse, fit_power, fit_intercept):
        with pytest.raises(ValueError):
            fit([0.0, 1.0], [1.0, 2.0])
        with pytest.raises(ValueError):
            fit([], [])
    with pytest.raises(ValueError, match="distinct"):
        fit_power([2.0, 2.0], [1.0, 3.0])  # no spread in lambda: no slope
    with pytest.raises(ValueError, match="dt > 0"):
        fit_power([1.0, 2.0], [0.0, 3.0])


# ---------------------------------------------------------------------------------------------
# Student t


@pytest.mark.parametrize(("df", "expected"), [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281),
                                              (30, 2.0423), (1000, 1.9623)])
def test_t_quantile_matches_the_printed_tables(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_matches_the_closed_forms_of_one_and_two_degrees_of_freedom() -> None:
    for q in (0.55, 0.8, 0.95, 0.999):
        assert t_quantile(q, 1) == pytest.approx(math.tan(math.pi * (q - 0.5)), rel=1e-12)  # Cauchy
        assert t_quantile(q, 2) == pytest.approx((2 * q - 1) / math.sqrt(2 * q * (1 - q)), rel=1e-12)
        assert t_quantile(1 - q, 7) == pytest.approx(-t_quantile(q, 7), rel=1e-12)
    assert t_cdf(0.0, 5) == 0.5 and t_cdf(1.0, 1) == pytest.approx(0.75)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError):
            t_quantile(bad, 3)
    with pytest.raises(ValueError, match="integer df"):
        t_cdf(1.0, 0)


# ---------------------------------------------------------------------------------------------
# the free exponent and the intercept model


def test_exact_power_law_gives_its_exponent_with_a_zero_width_interval() -> None:
    lams = [2.5, 5, 7.5, 10, 15, 25]  # absolute weight decays, lambda0 = 5
    fit = fit_power(lams, [7000 * lam ** -1.3 for lam in lams])
    assert fit.alpha == pytest.approx(1.3, abs=1e-12) and fit.c == pytest.approx(7000, rel=1e-12)
    assert fit.alpha_ci is not None and fit.alpha_ci[1] - fit.alpha_ci[0] < 1e-9
    assert fit.r2_log == pytest.approx(1.0) and fit.n == 6


def test_power_fit_by_hand() -> None:
    # log lambda = 0, 1, 2 and log dt = 3, 2, 1.5: slope -3/4 (alpha 0.75), intercept 35/12, residuals
    # 1/12, -1/6, 1/12 (SS_res 1/24); se = sqrt(SS_res / (n - 2) / Sxx) = sqrt(1/24 / 1 / 2); t_0.975, 1 df = 12.7062
    fit = fit_power([1.0, math.e, math.e ** 2], [math.exp(3), math.exp(2), math.exp(1.5)])
    assert fit.alpha == pytest.approx(0.75) and fit.c == pytest.approx(math.exp(35 / 12))
    se = math.sqrt(1 / 48)
    assert fit.alpha_se == pytest.approx(se)
    assert fit.alpha_ci == pytest.approx((0.75 - 12.7062 * se, 0.75 + 12.7062 * se), abs=1e-4)
    assert fit.r2_log == pytest.approx(1 - (1 / 24) / (7 / 6))  # SS_tot of log dt about 13/6: 42/36
    two = fit_power([1.0, 2.0], [100.0, 50.0])  # two points: an exponent, no interval
    assert two.alpha == pytest.approx(1.0) and two.alpha_ci is None and two.alpha_se is None and two.r2_log is None


def test_the_interval_covers_the_true_exponent_at_its_nominal_rate() -> None:
    rng = random.Random(13)
    lams = [2.5, 5, 10, 15, 25]  # 3 degrees of freedom: a normal quantile would cover only ~86 %
    covered = normal_covered = 0
    trials = 2000
    for _ in range(trials):
        dts = [7000 * lam ** -1.3 * math.exp(rng.gauss(0, 0.15)) for lam in lams]
        fit = fit_power(lams, dts)
        covered += fit.alpha_ci[0] <= 1.3 <= fit.alpha_ci[1]
        normal_covered += abs(fit.alpha - 1.3) <= 1.96 * fit.alpha_se
    assert 0.935 <= covered / trials <= 0.965  # 0.95 within 3 binomial standard deviations
    assert normal_covered / trials < 0.9
    one = fit_power(lams, [7000 * lam ** -1.3 * (1 + 0.05 * (-1) ** i) for i, lam in enumerate(lams)])
    assert one.alpha_ci[0] < 1.3 < one.alpha_ci[1] and one.alpha_ci[1] - one.alpha_ci[0] > 0.01


def test_intercept_model_by_hand() -> None:
    # x = 1/lambda = 1, 2, 4 and dt = 1, 3, 4: C = Sxy / Sxx = (39/9) / (42/9) = 13/14, a = 8/3 - C 7/3 = 1/2,
    # SS_res = 9/14, SS_tot = 14/3: R^2 = 169/196
    fit = fit_intercept([1.0, 0.5, 0.25], [1.0, 3.0, 4.0])
    assert fit.a == pytest.approx(0.5) and fit.c == pytest.approx(13 / 14) and fit.r2 == pytest.approx(169 / 196)
    lams = [2.5, 5, 10, 25]
    exact = fit_intercept(lams, [300 + 6000 / lam for lam in lams])
    assert exact.a == pytest.approx(300) and exact.c == pytest.approx(6000) and exact.r2 == pytest.approx(1.0)
    assert fit_inverse(lams, [300 + 6000 / lam for lam in lams]).r2 < 0.99  # the origin fit misses the offset
    assert fit_intercept([1.0, 2.0], [5.0, 3.0]).r2 is None  # two points, two parameters


def test_law_fits_give_what_the_points_allow() -> None:
    empty = law_fits([], [])
    assert empty["n"] == 0 and empty["C"] is None and empty["power"] is None and empty["intercept"] is None
    one = law_fits([2.0], [400.0])
    assert one["C"] == pytest.approx(800) and one["r2"] is None and one["power"] is None and one["intercept"] is None
    assert one["monotone"] is None  # one branch: "dt falls as lambda rises" cannot be judged, not False
    assert fit_inverse([2.0, 2.0], [400.0, 300.0]).monotone is None  # nor with one distinct lambda
    lams = [1.0, 2.0, 4.0]
    full = law_fits(lams, [800 / lam for lam in lams])
    assert full["power"]["alpha"] == pytest.approx(1.0) and full["power"]["alpha_ci95"] == pytest.approx([1.0, 1.0])
    assert full["intercept"]["a"] == pytest.approx(0.0, abs=1e-9) and full["monotone"]


# ---------------------------------------------------------------------------------------------
# seed averaging


def test_seed_average_keeps_the_factors_every_seed_has_and_fits_in_absolute_lambda() -> None:
    seeds = [{0.5: 2400.0, 1.0: 1200.0, 2.0: 600.0, 3.0: None}, {0.5: 2600.0, 1.0: 1000.0, 2.0: 500.0}]
    avg = seed_average(5.0, seeds)
    assert [p.factor for p in avg.points] == [0.5, 1.0, 2.0]
    assert [p.weight_decay for p in avg.points] == [2.5, 5.0, 10.0]
    assert [p.mean_dt for p in avg.points] == [2500.0, 1100.0, 550.0]
    assert [p.sd for p in avg.points] == pytest.approx([100 * math.sqrt(2)] * 2 + [50 * math.sqrt(2)])
    assert [p.se for p in avg.points] == pytest.approx([100.0, 100.0, 50.0])
    assert avg.dropped == ((3.0, (0, 1)),)  # seed 0 has no dt there, seed 1 no branch
    # x = 1/lambda = 0.4, 0.2, 0.1: C = (1000 + 220 + 55) / (0.16 + 0.04 + 0.01), in steps x absolute lambda
    assert avg.fits["C"] == pytest.approx(1275 / 0.21) and avg.fits["n"] == 3 and avg.fits["monotone"]
    with pytest.raises(ValueError):
        seed_average(0.0, seeds)
    assert seed_average(1.0, [{1.0: 10.0}]).points[0].sd is None


# ---------------------------------------------------------------------------------------------
# stability


def _series(parent: list[tuple[int, float, float]], branch: list[tuple[int, float, float]]):
    """(steps, train acc, train loss) of a branch: the parent's evaluations up to the fork, then its own."""
    rows = parent + branch
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


# A parent evaluated every 20 steps: memorised at step 200, train loss 1e-4 from then on; fork at 1000.
PARENT = [(s, 0.5 if s < 200 else 1.0, 4.0 if s < 200 else 1e-4) for s in range(0, 1001, 20)]


def _branch(dip: range = range(0), acc: float = 0.29, loss: dict[int, float] | None = None, end: int = 2000):
    return [(s, acc if s in dip else 1.0, (loss or {}).get(s, 1e-4)) for s in range(1020, end + 1, 20)]


def test_pre_fork_level_is_the_median_train_loss_from_memorisation_to_the_fork() -> None:
    steps = list(range(0, 1001, 100))
    acc = [0.1, 0.5, 0.9, 0.995, 1, 1, 1, 1, 1, 1, 1]
    # from t_mem = 300: 0.02, 1e-3, 1e-3, 2e-3, 1e-3, 9 (an Adam spike), 1e-3, 1e-3 -> median 1e-3
    loss = [5.0, 3.0, 1.0, 0.02, 1e-3, 1e-3, 2e-3, 1e-3, 9.0, 1e-3, 1e-3]
    assert pre_fork_level(steps, acc, loss, 1000) == (300, pytest.approx(1e-3))
    assert pre_fork_level(steps, acc, loss, 400) == (300, pytest.approx((0.02 + 1e-3) / 2))
    assert pre_fork_level(steps, [0.5] * 11, loss, 1000) == (None, None)  # never memorised
    assert pre_fork_level(steps, acc, loss, 200) == (None, None)  # memorised only after the fork


def test_a_dip_between_the_fork_and_grokking_is_unstable() -> None:
    out = branch_stability(*_series(PARENT, _branch(range(1100, 1241))), fork_step=1000, t_grok=1600)
    # train acc 0.29 at 1100, 1120, ..., 1240: 140 steps, all before t_grok
    assert not out.stable and out.dip_steps == 140 and out.min_train_acc == 0.29
    assert out.reason == "train acc below 0.99 for 140 steps before t_grok (lowest 0.290)"
    assert out.window == (1000, 1600) and out.window_end == "t_grok"
    assert out.t_mem == 200 and out.pre_fork_level == pytest.approx(1e-4)


def test_a_dip_after_grokking_or_straddling_it_is_stable() -> None:
    after = branch_stability(*_series(PARENT, _branch(range(1700, 1841))), fork_step=1000, t_grok=1600)
    assert after.stable and after.reason == "" and after.min_train_acc == 1.0 and after.dip_steps == 0
    # the grokking transition's own dip, from 1560 on: 40 steps of it lie in the window
    across = branch_stability(*_series(PARENT, _branch(range(1560, 1801))), fork_step=1000, t_grok=1600)
    assert across.stable and across.dip_steps == 40 and across.min_train_acc == 0.29


def test_a_one_evaluation_spike_is_stable() -> None:
    out = branch_stability(*_series(PARENT, _branch(range(1300, 1301), acc=0.5, loss={1300: 5e-3})),
                           fork_step=1000, t_grok=1600)
    assert out.stable and out.dip_steps == 0 and out.spike_steps == 0
    assert out.max_loss_ratio == pytest.approx(50) and out.min_train_acc == 0.5


def test_a_sustained_loss_rise_is_unstable_even_at_full_train_accuracy() -> None:
    rise = {s: 2e-3 for s in range(1200, 1301, 20)}  # 20x the pre-fork level for 100 steps
    out = branch_stability(*_series(PARENT, _branch(loss=rise)), fork_step=1000, t_grok=1600)
    assert not out.stable and out.spike_steps == 100 and out.min_train_acc == 1.0
    assert out.reason == "train loss above 10x its pre-fork level for 100 steps before t_grok (max 20x)"
    short = {s: 2e-3 for s in range(1200, 1281, 20)}  # 80 steps
    assert branch_stability(*_series(PARENT, _branch(loss=short)), fork_step=1000, t_grok=1600).stable


def test_the_level_from_memorisation_lets_the_loss_test_fire_where_the_old_window_could_not() -> None:
    # The parent memorises at step 460 of a fork at 600. The old window, the 1000 steps before the fork, reached
    # back to step 0: 23 of its 31 evaluations are at loss 4.0, so its max (the old level) and even its median
    # are 4.0, and a branch at 0.05 is 0.0125x of that. From memorisation on the level is 1e-4: 0.05 for 160
    # steps is 500x.
    parent = [(s, 0.5 if s < 460 else 1.0, 4.0 if s < 460 else 1e-4) for s in range(0, 601, 20)]
    old_window = sorted(x for s, _, x in parent if s >= 600 - 1000)
    assert max(old_window) == 4.0 and old_window[len(old_window) // 2] == 4.0
    branch = [(s, 1.0, 0.05 if 700 <= s <= 860 else 1e-4) for s in range(620, 1201, 20)]
    out = branch_stability(*_series(parent, branch), fork_step=600, t_grok=1000)
    assert not out.stable and out.spike_steps == 160 and out.max_loss_ratio == pytest.approx(500)
    assert out.pre_fork_level == pytest.approx(1e-4) and out.t_mem == 460


def test_a_branch_that_never_grokked_is_judged_to_its_last_evaluation() -> None:
    out = branch_stability(*_series(PARENT, _branch(range(1900, 2001), end=2000)), fork_step=1000, t_grok=None)
    assert not out.stable and out.window == (1000, 2000) and out.window_end == "last evaluation"
    assert out.reason == "train acc below 0.99 for 100 steps after the fork (no t_grok) (lowest 0.290)"
    nothing = branch_stability(*_series(PARENT, []), fork_step=1000, t_grok=None)
    assert not nothing.stable and nothing.window is None and nothing.reason == "no evaluation after the fork"
    bad = branch_stability(*_series(PARENT, _branch(loss={1100: math.nan})), fork_step=1000, t_grok=1600)
    assert not bad.stable and bad.reason == "non-finite train loss"


def test_the_fork_step_row_is_the_parent_s_and_is_not_judged() -> None:
    # Evaluations every 100 steps (p = 53 seed 1's case): the parent's row at the fork step sits in one of its
    # loss spikes and so does the branch's first evaluation. Judged from 1100 on, the spike is one evaluation
    # (0 steps, stable); counting the fork-step row would make it 1000 to 1100, 100 steps, unstable.
    parent = [(s, 1.0, 1e-4) for s in range(0, 1000, 100)] + [(1000, 1.0, 5e-3)]
    branch = [(1100, 1.0, 5e-3)] + [(s, 1.0, 1e-4) for s in range(1200, 2001, 100)]
    out = branch_stability(*_series(parent, branch), fork_step=1000, t_grok=1600)
    assert out.stable and out.spike_steps == 0 and out.window == (1000, 1600)
    assert out.pre_fork_level == pytest.approx(1e-4) and out.max_loss_ratio == pytest.approx(50)


def test_a_loss_stored_as_null_is_non_finite() -> None:
    # metrics.jsonl writes NaN as null: the rows hold None, which must read as non-finite, not raise.
    steps = list(range(0, 1001, 100))
    loss = [5.0, 3.0, 1.0, None, 1e-3, 1e-3, None, 1e-3, 2e-3, 1e-3, 1e-3]
    assert pre_fork_level(steps, [0.1, 0.5, 0.9] + [1.0] * 8, loss, 1000) == (300, pytest.approx(1e-3))
    out = branch_stability(*_series(PARENT, _branch(loss={1100: None})), fork_step=1000, t_grok=1600)
    assert not out.stable and out.reason == "non-finite train loss" and out.window == (1000, 1600)
    rows = _rows(1000, 1500, 2000)
    rows[12]["train_loss"] = None  # step 1200, inside the window
    line = analyse_branch(1000, 1.0, rows)
    assert not line["stable"] and line["unstable_reason"] == "non-finite train loss"


def test_without_memorisation_before_the_fork_only_the_accuracy_test_applies() -> None:
    parent = [(s, 0.5, 4.0) for s in range(0, 1001, 20)]
    out = branch_stability(*_series(parent, _branch(loss={s: 1.0 for s in range(1100, 1500, 20)})),
                           fork_step=1000, t_grok=1600)
    assert out.stable and out.pre_fork_level is None and out.max_loss_ratio is None
    assert out.reason.startswith("loss test not applied")


def test_coefficient_of_variation() -> None:
    assert coefficient_of_variation([2.0, 4.0]) == pytest.approx(1 / 3)
    assert coefficient_of_variation([5.0, 5.0, 5.0]) == 0.0
    assert coefficient_of_variation([1.0]) is None


# ---------------------------------------------------------------------------------------------
# fork.json from rows


def _rows(fork: int, t_grok: int | None, end: int, loss_after: float = 1e-6, acc_after: float = 1.0) -> list[dict]:
    """Evaluations every 100 steps, memorised from step 0 at loss 1e-6; val acc 1 from t_grok."""
    rows = []
    for step in range(0, end + 1, 100):
        val = 1.0 if t_grok is not None and step >= t_grok else 0.3
        rows.append({"step": step, "val_acc": val, "train_acc": 1.0 if step <= fork else acc_after,
                     "train_loss": 1e-6 if step <= fork else loss_after, "weight_norm": 400.0})
    return rows


def test_branch_lines_and_both_fits_from_rows() -> None:
    branches = [analyse_branch(1000, lam, _rows(1000, 1000 + int(round(600 / lam, -2)), 3000)) for lam in (0.5, 1, 2)]
    assert [b["dt"] for b in branches] == [1200, 600, 300]
    first = branches[0]
    assert first["stable"] and first["unstable_reason"] == "" and first["mem_norm"] == pytest.approx(20.0)
    assert first["stability_window"] == [1000, 2200] and first["window_end"] == "t_grok"
    assert first["t_mem"] == 0 and first["pre_fork_level"] == pytest.approx(1e-6)
    fits = analyse_fork(branches)
    assert "absolute" in fits["lambda_unit"]
    for subset in ("all_grokked", "stable"):
        fit = fits[subset]
        assert fit["n"] == 3 and fit["C"] == pytest.approx(600) and fit["r2"] == pytest.approx(1.0)
        assert fit["monotone"] and fit["mem_norm_cv"] == 0.0 and fit["excluded"] == []
        assert fit["power"]["alpha"] == pytest.approx(1.0) and fit["intercept"]["a"] == pytest.approx(0, abs=1e-6)
    text = fit_lines({"fits": fits, "lambda0": 1.0})
    assert "- all grokked: 3 branches" in text and "alpha = 1.000 (95 % CI 1.000 to 1.000)" in text


def test_all_grokked_and_stable_fits_name_what_they_leave_out() -> None:
    good = [analyse_branch(1000, lam, _rows(1000, 1000 + int(600 / lam), 3000)) for lam in (1, 2)]
    spiky = analyse_branch(1000, 5, _rows(1000, 1300, 3000, loss_after=1e-3))  # 1000x the level until t_grok
    never = analyse_branch(1000, 0.5, _rows(1000, None, 3000))
    assert spiky["dt"] == 300 and not spiky["stable"] and never["dt"] is None
    assert spiky["unstable_reason"] == ("train loss above 10x its pre-fork level for 200 steps before t_grok "
                                        "(max 1e+03x)")
    fits = analyse_fork(good + [spiky, never])
    every, stable = fits["all_grokked"], fits["stable"]
    assert every["weight_decays"] == [1, 2, 5] and stable["weight_decays"] == [1, 2]
    assert every["excluded"] == [{"weight_decay": 0.5, "name": None, "reason": "did not grok by step 3000"}]
    assert [e["weight_decay"] for e in stable["excluded"]] == [5, 0.5]
    assert stable["excluded"][0]["reason"].startswith("unstable: train loss above 10x")


def _report(seed: int, dts: dict[float, int | None], lambda0: float = 5.0, unstable: float | None = None) -> dict:
    branches = [{"weight_decay": k * lambda0, "dt": dt, "stable": k != unstable, "unstable_reason": "x",
                 "last_step": 9000, "status": "completed", "mem_norm": None} for k, dt in dts.items()]
    return {"task": {"op": "add", "p": 53, "frac_train": 0.3, "seed": seed}, "lambda0": lambda0, "branches": branches}


def test_seed_averaged_fits_from_fork_reports() -> None:
    reports = [_report(0, {0.5: 2400, 1: 1200, 2: 600, 5: None}), _report(1, {0.5: 2600, 1: 1000, 2: 500, 5: 200},
                                                                       unstable=2)]
    every = seed_averaged_fits(reports)
    assert [p["weight_decay"] for p in every["points"]] == [2.5, 5.0, 10.0]
    assert [p["mean_dt"] for p in every["points"]] == [2500, 1100, 550] and every["seeds"] == [0, 1]
    assert every["dropped"] == [{"factor": 5.0, "seeds": [0]}]
    assert every["C"] == pytest.approx(1275 / 0.21) and every["lambda0"] == 5.0
    stable = seed_averaged_fits(reports, "stable")  # seed 1's branch at 2 x lambda0 is unstable
    assert [p["factor"] for p in stable["points"]] == [0.5, 1.0]
    assert stable["dropped"] == [{"factor": 2.0, "seeds": [1]}, {"factor": 5.0, "seeds": [0]}]
    with pytest.raises(ValueError, match="one lambda0"):
        seed_averaged_fits([reports[0], _report(1, {1: 100}, lambda0=1.0)])
    with pytest.raises(ValueError, match="distinct seeds"):
        seed_averaged_fits([reports[0], reports[0]])


# ---------------------------------------------------------------------------------------------
# fork inputs


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


def test_a_branch_that_never_trained_is_left_out_as_not_started_not_as_failing_to_grok() -> None:
    waiting = {"dt": None, "status": "not-started", "last_step": None, "weight_decay": 2.0, "stable": None}
    assert exclusion_reason(waiting, "all_grokked") == "no evaluation yet (not-started)"
    cut = {**waiting, "status": "interrupted", "last_step": 4300}
    assert exclusion_reason(cut, "all_grokked") == "did not grok by step 4300 (interrupted)"
