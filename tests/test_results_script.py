"""scripts/results.py: the results pages from JSON. Tiny fake inputs with hand-computed expectations: the fits and
seed averages of the fork page, the fp32 / bf16 comparison rule. The lead page is tests/test_results_lead.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pytest

# scripts/ is not a package: `python scripts/results.py` finds results_pages beside it on sys.path; so does this.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from results_pages import forks_collect as FC  # noqa: E402
from results_pages import forks_render as FR  # noqa: E402
from results_pages import precision as P  # noqa: E402


def section(page: str, title: str) -> str:
    return page.split(title, 1)[1].split("\n## ", 1)[0]


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
    return FC.collect_forks(args)


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
    page = FR.render_forks(data, "wd_fork_fits.json")
    assert "**Stability not judged.**" in page
    verdicts = section(page, "## What reproduces and what does not")
    assert "p = 53, seed-averaged: consistent with alpha = 1 (ours alpha 1.00; the 95 % CI [1.00, 1.00] holds 1" \
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
    verdicts = section(FR.render_forks(data, "wd_fork_fits.json"), "## What reproduces and what does not")
    assert "a: consistent with alpha = 1 (ours alpha 2.00; the 95 % CI [" \
        in verdicts.split("Does not reproduce")[1].split("- Cannot")[0]
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
    data = FC.collect_forks(argparse.Namespace(from_=[str(tmp_path / "old.json"), str(tmp_path / "fork")],
                                              commit=None, conditions=""))
    roles = {f["name"]: (f["role"], f["role_of"]) for f in data["forks"]}
    assert roles == {"p53-s0-at1000": ("superseded", "p53-s0-at1000-2"), "p53-s0-at1000-2": ("result", None)}
    judged = data["forks"][0]
    assert judged["fits"]["stable"]["n"] == 3 and judged["fits"]["all_grokked"]["n"] == 4
    assert data["stability"]["not_applied_to"] == []
    page = FR.render_forks(data, "wd_fork_fits.json")
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


@pytest.mark.unit
def test_an_exponent_interval_that_holds_zero_is_not_judged() -> None:
    def power(lo: float, hi: float) -> dict:
        return {"alpha": (lo + hi) / 2, "alpha_ci95": [lo, hi]}

    assert FR.alpha_claim("x", power(0.5, 1.5))[1] is True
    assert FR.alpha_claim("x", power(1.1, 1.3))[1] is False
    text, verdict = FR.alpha_claim("x", power(-4.75, 6.28))
    assert verdict is None and "alpha = 0" in text
