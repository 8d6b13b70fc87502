"""scripts/results.py: the results pages from JSON. Tiny fake inputs with hand-computed expectations: the sign
test and counts of the lead page, the fits and seed averages of the fork page, the fp32 / bf16 comparison rule;
and one tiny real run collected end to end (FSD recomputed from its spectra equals what it logged).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from grokmon.config import Config
from grokmon.metrics.grokking import lead
from grokmon.session import RunSession

# scripts/ is not a package: `python scripts/results.py` finds results_pages beside it on sys.path; so does this.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from results_pages import forks as F  # noqa: E402
from results_pages import lead as L  # noqa: E402
from results_pages import precision as P  # noqa: E402

KEYS = [k for k, *_ in L.STATISTICS]


# ---------------------------------------------------------------------------------------------
# lead


def lead_run(name: str, t_grok: int | None, t_fsd: int | None, t_excluded: int | None, done: bool = True) -> dict:
    """A collected lead run with the same t_fsd under every statistic."""
    line: dict[str, Any] = {"name": name, "run_dir": f"/x/{name}", "status": "completed" if done else "not started",
                            "done": done, "last_step": 9000 if done else None, "p": 113, "seed": 0,
                            "weight_decay": 1.0, "sweep": "/x"}
    if not done:
        return line
    grokked = t_grok is not None
    cell = {"m": 5, "t_fsd": t_fsd, "t_fsd_online": None, "lead": lead(t_grok, t_fsd),
            "fsd_before_excluded": L.before(t_fsd, t_excluded, grokked),
            "fsd_before_excluded_online": L.before(t_fsd, t_excluded, grokked)}
    return {**line, "t_grok_50": t_grok, "t_grok": t_grok, "t_grok_99": t_grok, "t_excluded": t_excluded,
            "t_excluded_online": t_excluded, "key_freqs": [3, 7], "n_key": 2, "excluded_missing": None,
            "steps": 9000, "wall_s": 600.0, "by_statistic": {k: dict(cell) for k in KEYS}}


def lead_data(runs: list[dict]) -> dict:
    return {"experiment": "lead", "command": "python scripts/results.py collect lead", "collected_at_commit": "abc",
            "trained_at_commit": "def", "conditions": "1 thread", "paper": L.PAPER_LEAD,
            "sweeps": [{"dir": "/x", "profile": "fsd", "command": "grokmon sweep fsd", "overrides": [], "n_planned": 15,
                        "wall": {"sum_run_wall_s": 3600.0, "span_s": 7200.0}}],
            "statistics": [{"key": k, "label": label, "statistic": s, "m": m} for k, label, s, m in L.STATISTICS],
            "n_planned": 15, "n_done": sum(r["done"] for r in runs),
            "not_done": [{"name": r["name"], "status": r["status"], "last_step": None} for r in runs if not r["done"]],
            "runs": runs, "summary": L.lead_summary(runs), "mu0": {"n_runs": 0}, "wall": {}}


def section(page: str, title: str) -> str:
    return page.split(title, 1)[1].split("\n## ", 1)[0]


@pytest.mark.unit
def test_four_of_five_positive_leads_give_the_sign_test_p_and_counts_by_hand() -> None:
    # leads 1000, 2000, 500, 4000, -300: 4 of 5 positive; two-sided p = 2 * (1 + 5) / 32 = 0.375
    runs = [lead_run("a", 5000, 4000, 4500), lead_run("b", 6000, 4000, 3000), lead_run("c", 3000, 2500, 2600),
            lead_run("d", 9000, 5000, 6000), lead_run("e", 2000, 2300, 2400),
            lead_run("f", None, 3000, 5000), lead_run("g", None, None, None, done=False)]
    page = L.render_lead(lead_data(runs), "fsd_lead.json")
    default = next(line for line in section(page, "## Summary against the paper").splitlines()
                   if line.startswith("| top-5 overlap"))
    # runs with a lead, mean (1000+2000+500+4000-300)/5 = 1440, 4/5, p, inside 500-3000 (1000, 2000, 500), verdicts:
    # before the excluded rise in a (4000 < 4500), c (2500 < 2600), d, e; not b; f did not grok: no verdict
    assert default.split(" | ")[1:] == ["5", "1440", "4/5", "0.375", "3/5", "4/5", "4/5 |"]
    assert "**6 of 15 runs done.**" in page and "g (not started" in page
    table = section(page, "## top-5 overlap (the default)")
    f_row = next(line for line in table.splitlines() if line.startswith("| f |"))
    assert f_row.split(" | ")[-2:] == ["-", "- |"]  # did not grok: no verdict either way
    verdicts = section(page, "## What reproduces and what does not")
    assert "Does not reproduce:\n  - the lead is positive in every run (ours 4 of 5" in verdicts
    assert "Cannot be judged from these data:\n  - the sign test gives p < 0.05 (ours p = 0.375" in verdicts  # 5 leads


@pytest.mark.unit
def test_nine_positive_leads_inside_the_range_reproduce_the_paper() -> None:
    runs = [lead_run(f"r{i}", 4000 + 100 * i, 2500 + 100 * i, 3000 + 100 * i) for i in range(9)]  # leads 1500
    page = L.render_lead(lead_data(runs), "fsd_lead.json")
    default = section(page, "## What reproduces and what does not").split("**top-3 overlap**")[0]
    p = 2 / 2 ** 9  # two-sided, 9 of 9 positive
    assert f"the sign test gives p < 0.05 (ours p = {p:.3g}" in default and "Does not reproduce: nothing." in default
    assert "the lead is positive in every run (ours 9 of 9" in default.split("Does not reproduce")[0]
    assert "before the excluded-loss rise (final keys) in every grokked run (ours 9 of 9" in default


@pytest.mark.unit
def test_a_run_that_did_not_grok_gets_no_verdict() -> None:
    assert L.before(3000, 5000, grokked=False) is None
    assert L.before(3000, 5000, grokked=True) is True
    assert L.before(5000, 5000, grokked=True) is False  # the same step is not before
    assert L.before(None, 5000, grokked=True) is None


# ---------------------------------------------------------------------------------------------
# forks


def branch(wd: float, lam0: float, fork: int, dt: float | None) -> dict:
    return {"weight_decay": wd, "t_grok": None if dt is None else fork + dt, "dt": dt, "status": "completed",
            "last_step": 12000, "mem_norm": 20.0, "min_train_acc": 0.9, "stable": True, "unstable_reason": "",
            "stable_spec": False, "unstable_reason_spec": "x", "name": f"wd_{wd:g}"}


def fork(p: int, seed: int, fork_step: int, rule: str, dts: dict[float, float | None], lam0: float = 2.0) -> dict:
    return {"run_dir": f"/runs/p{p}-s{seed}", "task": {"op": "add", "p": p, "frac_train": 0.3, "seed": seed},
            "fork_step": fork_step, "fork_rule": rule, "lambda0": lam0, "parent": {"t_grok": 9000},
            "branches": [branch(f * lam0, lam0, fork_step, dt) for f, dt in dts.items()],
            "fit": {"n_fit": 3, "C": 1.0, "r2": 0.5, "monotone": True, "mem_norm_cv": 0.0, "excluded": []},
            "fit_spec_stability": {"n_fit": 0, "C": None, "r2": None, "monotone": None, "mem_norm_cv": None,
                                   "excluded": []}}


def collect_forks(tmp_path: Path, reports: dict[str, dict]) -> dict:
    src = tmp_path / "wd_fork.json"
    src.write_text(json.dumps(reports))
    args = argparse.Namespace(from_=[str(src)], commit=None, conditions="")
    return F.collect_forks(args)


@pytest.mark.unit
def test_exact_inverse_law_gives_alpha_one_and_the_seed_average_by_hand(tmp_path: Path) -> None:
    lam0 = 2.0  # dt = 6000 / lambda exactly for seed 0; seed 1 doubles it and never groks at factor 3
    s0 = {f: 6000 / (f * lam0) for f in (0.5, 1.0, 2.0, 3.0)}
    s1 = {0.5: 12000 / (0.5 * lam0), 1.0: 12000 / lam0, 2.0: 12000 / (2 * lam0), 3.0: None}
    data = collect_forks(tmp_path, {"a": fork(53, 0, 1000, "offline t_fsd", s0),
                                    "b": fork(53, 1, 1200, "offline t_fsd", s1),
                                    "c": fork(97, 0, 3000, "offline t_fsd", s0),
                                    "d": fork(97, 0, 500, "given step", s0)})
    a = next(f for f in data["forks"] if f["name"] == "a")["fits"]["all_grokked"]
    assert a["C"] == pytest.approx(6000) and a["r2"] == pytest.approx(1.0)  # C in absolute lambda units
    assert a["power"]["alpha"] == pytest.approx(1.0) and a["intercept"]["a"] == pytest.approx(0.0, abs=1e-6)
    assert [f["role"] for f in data["forks"] if f["p"] == 97] == ["result", "variant"]
    (avg,) = data["seed_averaged"]
    fit = avg["fits"]["all_grokked"]
    # factor 3 dropped (seed 1 has no dt); mean dt = 9000 / lambda at lambda 1, 2, 4: 9000, 4500, 2250
    assert [pt["mean_dt"] for pt in fit["points"]] == pytest.approx([9000, 4500, 2250])
    assert fit["points"][0]["sd"] == pytest.approx(math.sqrt(2) * 3000)  # dts 6000 and 12000
    assert fit["C"] == pytest.approx(9000) and [d["factor"] for d in fit["dropped"]] == [3.0]
    assert data["forks"][0]["fits"]["stable"] is None and data["stability"]["not_applied_to"]
    page = F.render_forks(data, "wd_fork_fits.json")
    assert "**Stability not judged.**" in page
    verdicts = section(page, "## What reproduces and what does not")
    assert "p = 53, seed-averaged: alpha = 1 inside the exponent's 95 % CI (ours alpha 1.00, CI [1.00, 1.00])" \
        in verdicts.split("Does not")[0]
    assert "a: every branch groks" not in verdicts and "b: every branch groks" in verdicts.split("Does not")[1]
    assert " d:" not in verdicts  # a variant is not scored
    assert "## Variants (not the result)" in page and "| 97 | 0 | 2 | 500 (given step)" in page


@pytest.mark.unit
def test_a_steeper_law_is_reported_as_not_one_over_lambda(tmp_path: Path) -> None:
    lam0 = 1.0  # dt = 8000 / lambda^2 with a little noise: alpha near 2, its interval far from 1
    dts = {f: 8000 / f ** 2 * (1 + 0.01 * (-1) ** i) for i, f in enumerate((0.5, 1.0, 1.5, 2.0, 3.0, 5.0))}
    data = collect_forks(tmp_path, {"a": fork(131, 0, 2000, "offline t_fsd", dts, lam0)})
    pw = data["forks"][0]["fits"]["all_grokked"]["power"]
    assert pw["alpha"] == pytest.approx(2.0, abs=0.05) and pw["alpha_ci95"][0] > 1.5
    verdicts = section(F.render_forks(data, "wd_fork_fits.json"), "## What reproduces and what does not")
    assert "a: alpha = 1 inside the exponent's 95 % CI" in verdicts.split("Does not reproduce")[1].split("- Cannot")[0]
    assert "seed-averaged fits for p = 53, 97, 131" in verdicts  # one seed: the paper's fit cannot be made


@pytest.mark.unit
def test_a_fork_judged_by_the_current_rule_supersedes_the_old_one_of_the_same_run(tmp_path: Path) -> None:
    dts = {0.5: 6000, 1.0: 3000, 2.0: 1500, 3.0: 1000}  # 6000 / lambda at lambda0 = 2
    new = fork(53, 0, 1000, "offline t_fsd", dts)
    del new["fit"], new["fit_spec_stability"]
    for b in new["branches"]:  # grokmon fork's branch lines now: the rule of metrics.md judged each
        b.update(stability_window=[1000, b["t_grok"]], window_end="t_grok")
    new["branches"][-1].update(stable=False, unstable_reason="train acc below 0.99 for 300 steps before t_grok")
    (tmp_path / "fork").mkdir()
    (tmp_path / "fork" / "fork.json").write_text(json.dumps(new))
    (tmp_path / "old.json").write_text(json.dumps({"p53-s0-at1000": fork(53, 0, 1000, "offline t_fsd", dts)}))
    data = F.collect_forks(argparse.Namespace(from_=[str(tmp_path / "old.json"), str(tmp_path / "fork")],
                                              commit=None, conditions=""))
    roles = {f["name"]: (f["role"], f["role_of"]) for f in data["forks"]}
    assert roles == {"p53-s0-at1000": ("superseded", "p53-s0-at1000-2"), "p53-s0-at1000-2": ("result", None)}
    judged = data["forks"][0]
    assert judged["fits"]["stable"]["n"] == 3 and judged["fits"]["all_grokked"]["n"] == 4
    assert data["stability"]["not_applied_to"] == []
    page = F.render_forks(data, "wd_fork_fits.json")
    assert "**Stability not judged.**" not in page and "## Fits over the stable branches" in page
    assert "## Earlier forks of the same runs (superseded, not scored)" in page
    assert "no (train acc below 0.99 for 300 steps before t_grok) | after 1000 to 2000 |" in page


# ---------------------------------------------------------------------------------------------
# precision


def write_precision_run(root: Path, precision: str, seed: int, t_grok: int | None, floor: float) -> None:
    run = root / f"precision{precision}-s{seed}"
    run.mkdir(parents=True)
    cfg = {"train": {"precision": precision}, "model": {"seed": seed}, "metrics": {"alpha": 0.05}, "profile": "quick"}
    (run / "config.json").write_text(json.dumps(cfg))
    rows = [{"step": s, "train_acc": 1.0, "val_acc": 0.99 if t_grok is not None and s >= t_grok else 0.1,
             "train_loss": floor * (2 if s == 1000 else 1) + (1.0 if s == 0 else 0.0), "val_loss": 1.0}
            for s in range(0, 1100, 100)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "summary.json").write_text(json.dumps({"status": "completed", "steps": 1000, "wall_s": 100.0}))


def precision_page(tmp_path: Path, bf16_t_grok: list[int | None]) -> tuple[dict, str]:
    root = tmp_path / "quick"
    for seed, t in enumerate([500, 600, 700]):
        write_precision_run(root, "fp32", seed, t, 1e-6)
    for seed, t in enumerate(bf16_t_grok):
        write_precision_run(root, "bf16", seed, t, 1e-4)
    (root / "sweep.json").write_text(json.dumps({"profile": "quick", "grid": {"train.precision": ["fp32", "bf16"]},
                                                 "seeds": [0, 1, 2], "overrides": [], "runs": [
        {"name": f"precision{p}-s{s}", "seed": s} for p in ("fp32", "bf16") for s in range(3)]}))
    args = argparse.Namespace(from_=[str(root)], commit="c0ffee", conditions="")
    data = P.collect_precision(args)
    return data, P.render_precision(data, "precision.json")


@pytest.mark.unit
def test_a_t_grok_shift_beyond_the_seed_range_is_called_a_change(tmp_path: Path) -> None:
    data, page = precision_page(tmp_path, [800, 900, 1000])  # +300 against a range of 200
    run = next(r for r in data["runs"] if r["name"] == "precisionbf16-s0")
    assert (run["t_grok"], run["min_train_loss"], run["final_train_loss"]) == (800, 1e-4, 2e-4)
    (c,) = [c for c in data["comparisons"] if c["quantity"] == "t_grok"]
    assert (c["diff"], c["spread"], c["beyond_spread"]) == (pytest.approx(300), 200, True)
    assert c["paired"] == {"0": 300, "1": 300, "2": 300}  # the same seed's fp32 run: 500, 600, 700
    assert "bf16 changes grokking beyond the seed-to-seed spread" in page
    assert "**6 of 6 planned runs done.**" in page


@pytest.mark.unit
def test_a_shift_inside_the_seed_range_is_not_and_a_bf16_run_that_never_groks_is(tmp_path: Path) -> None:
    _, page = precision_page(tmp_path / "a", [550, 650, 750])  # +50 against 200
    assert "bf16 does not change grokking beyond the seed-to-seed spread" in page
    data, page = precision_page(tmp_path / "b", [500, 600, None])
    (c,) = [c for c in data["comparisons"] if c["quantity"] == "t_grok"]
    assert c["beyond_spread"] is True and "grokked in 3 of 3 fp32 runs and 2 of 3 bf16 runs" in page


# ---------------------------------------------------------------------------------------------
# collect lead on a real run


@pytest.mark.engine
def test_collect_lead_recomputes_the_logged_fsd_of_a_real_run(tiny: Config, tmp_path: Path) -> None:
    cfg = tiny.replace("metrics", metrics_every=1).replace("train", checkpoint_every=20, max_steps=100)
    RunSession.new(cfg, tmp_path / "run").run(handle_signals=False)
    line = L.collect_lead_run(tmp_path / "run", "run", 0)
    assert line["done"] and line["p"] == 23
    check = line["mu0_check"]
    # This commit logs FSD with the exact mu0 and the same null draws: the recomputation must agree exactly.
    assert check["n_evaluations"] == 6 and check["max_abs_fsd_diff"] < 1e-12 and check["max_abs_p_diff"] == 0
    assert check["t_fsd_changed"] is False
    assert set(line["by_statistic"]) == set(KEYS)
    if line["t_grok"] is None:
        assert all(c["fsd_before_excluded"] is None for c in line["by_statistic"].values())


@pytest.mark.unit
def test_an_exponent_interval_that_holds_zero_is_not_judged() -> None:
    def power(lo: float, hi: float) -> dict:
        return {"alpha": (lo + hi) / 2, "alpha_ci95": [lo, hi]}

    assert F.alpha_claim("x", power(0.5, 1.5))[1] is True
    assert F.alpha_claim("x", power(1.1, 1.3))[1] is False
    text, verdict = F.alpha_claim("x", power(-4.75, 6.28))
    assert verdict is None and "alpha = 0" in text
