"""The fork page (scripts/results_pages/forks_collect.py, forks_render.py) on tiny fake fork reports: which fork
supersedes which, seed groups that cannot be averaged, claims that cannot be judged, and what the page says
beside its verdicts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from results_pages import forks_collect as FC  # noqa: E402
from results_pages import forks_render as FR  # noqa: E402

pytestmark = pytest.mark.unit


def report(seed: int, fork_step: int, dts: dict[float, int | None], *, judged: bool = True, lam0: float = 5.0,
           rule: str = "offline t_fsd", **extra: Any) -> dict:
    """A fork.json with a branch at lambda0 x factor for each factor; dt None: did not grok by step 12000.
    judged: branch lines as `grokmon fork` writes them now (the stability rule of metrics.md), else old ones."""
    branches = []
    for factor, dt in dts.items():
        t_grok = None if dt is None else fork_step + dt
        line = {"name": f"wd_{factor * lam0:g}", "weight_decay": factor * lam0, "status": "completed",
                "t_grok": t_grok, "dt": dt, "last_step": 12000 if t_grok is None else t_grok + 500, "mem_norm": 20.0,
                "min_train_acc": 1.0, "stable": dt is not None, "unstable_reason": "" if dt else "acc below 0.99"}
        if judged:
            line.update(stability_window=[fork_step, t_grok or 12000], stability_note="", pre_fork_level=0.02,
                        window_end="t_grok" if t_grok else "last evaluation", max_loss_ratio=3.0, dip_steps=0,
                        spike_steps=0)
        branches.append(line)
    return {"run_dir": f"/runs/p53-s{seed}", "task": {"op": "add", "p": 53, "frac_train": 0.3, "seed": seed},
            "fork_step": fork_step, "fork_rule": rule, "lambda0": lam0, "parent": {"t_grok": 9000},
            "after_grok": 500, "branches": branches, **extra}


def collect(tmp_path: Path, reports: dict[str, dict]) -> dict:
    src = tmp_path / "forks.json"
    src.write_text(json.dumps(reports))
    args = argparse.Namespace(from_=[str(src)], commit=None, conditions="branches evaluated every 100 steps")
    return FC.collect_forks(args)


def verdicts(data: dict) -> dict[str, str]:
    """The page's verdict section by group: yes, no, open (cannot be judged), notes; and the whole page."""
    page = FR.render_forks(data, "wd_fork_fits.json")
    text = page.split("## What reproduces and what does not")[1].split("\n## ")[0]
    out = {"yes": "", "no": "", "open": "", "notes": "", "page": page}
    heads = {"- Reproduces": "yes", "- Does not reproduce": "no", "- Cannot be judged from these data": "open"}
    group = "notes"
    for line in text.splitlines():
        if line.startswith("- "):
            group = next((g for h, g in heads.items() if line.startswith(h)), "notes")
        out[group] += line + "\n"
    return out


INVERSE = {0.5: 2400, 1.0: 1200, 2.0: 600}  # dt = 6000 / lambda at lambda0 = 5: alpha 1 exactly


def test_a_fork_supersedes_an_older_one_only_at_the_same_step_and_lambda0() -> None:
    reports = [{"name": "old", **report(1, 1000, INVERSE, judged=False)},
               {"name": "old-lam", **report(1, 1200, INVERSE, judged=False, lam0=2.0)},
               {"name": "old-step", **report(1, 800, INVERSE, judged=False)},
               {"name": "given", **report(1, 400, INVERSE, judged=False, rule="given step")},
               {"name": "new", **report(1, 1000, INVERSE)}, {"name": "new2", **report(1, 1200, INVERSE)}]
    roles = FC.fork_roles(reports)
    # a re-fork at a given step stays a variant, of the fork that replaced the one it was first made beside
    assert roles.pop("given") == ("variant", "new")
    assert roles == {"old": ("superseded", "new"),  # the same run forked again at the same point
                     "old-lam": ("result", None), "old-step": ("result", None),  # not replaced by new or new2
                     "new": ("result", None), "new2": ("result", None)}


def test_two_result_forks_at_one_seed_are_not_averaged_and_the_page_says_why(tmp_path: Path) -> None:
    data = collect(tmp_path, {"a": report(0, 1000, INVERSE), "b": report(0, 1100, INVERSE),
                              "c": report(1, 900, INVERSE)})
    (group,) = data["seed_averaged"]
    assert group["forks"] == ["a", "b", "c"] and "fits" not in group
    assert group["skipped"] == "forks a and b are both results at seed 0; the average takes one fork per seed"
    out = verdicts(data)
    assert "seed-averaged fits for p = 53 (not made: forks a and b are both results at seed 0" in out["open"]
    assert "p = 53, lambda0 5, forks a, b, c: not averaged: forks a and b are both results at seed 0" in out["page"]


def test_one_grokked_branch_cannot_tell_whether_dt_falls(tmp_path: Path) -> None:
    data = collect(tmp_path, {"a": report(0, 1000, {1.0: 1200, 2.0: None})})
    fit = data["forks"][0]["fits"]["all_grokked"]
    assert fit["n"] == 1 and fit["monotone"] is None
    assert "a: dt falls strictly as lambda rises" in verdicts(data)["open"]
    fit["monotone"] = False  # JSON collected before monotone was None for one point: the page still says open
    out = verdicts(data)
    assert "dt falls strictly" in out["open"] and "dt falls strictly" not in out["no"]


def test_per_run_r2_is_shown_as_information_not_scored(tmp_path: Path) -> None:
    data = collect(tmp_path, {"a": report(0, 1000, {0.5: 2400, 1.0: 1300, 2.0: 500})})
    out = verdicts(data)
    assert "R^2" not in out["yes"] + out["no"] + out["open"]
    r2 = data["forks"][0]["fits"]["all_grokked"]["r2"]
    assert (f"- Per-run R^2 of dt = C/lambda, for information, not scored (one fork at one seed; the paper's "
            f"0.89-0.99 is for seed-averaged dt): a {r2:.3f}.") in out["notes"]


def test_the_exponent_claim_says_what_its_interval_allows(tmp_path: Path) -> None:
    exact = verdicts(collect(tmp_path, {"a": report(0, 1000, INVERSE)}))
    assert ("a: consistent with alpha = 1 (ours alpha 1.00; the 95 % CI [1.00, 1.00] holds 1; it does not rule "
            "out other exponents inside it)") in exact["yes"]
    steep = verdicts(collect(tmp_path, {"a": report(0, 1000, {0.5: 4000, 1.0: 1000, 2.0: 260})}))
    assert "a: consistent with alpha = 1 (ours alpha 1.97; the 95 % CI [" in steep["no"]
    assert "] does not hold 1)" in steep["no"]
    flat = verdicts(collect(tmp_path, {"a": report(0, 1000, {0.5: 1000, 1.0: 400, 2.0: 900})}))
    assert "a: consistent with alpha = 1" in flat["open"] and "also holds alpha = 0" in flat["open"]


def test_every_branch_groks_within_its_step_limit(tmp_path: Path) -> None:
    dts = {0.5: 2400, 1.0: 1200, 2.0: None}
    out = verdicts(collect(tmp_path, {"a": report(0, 1000, dts, branch_max_steps=12000)}))
    assert ("a: every branch groks within its step limit (12000 steps), as a finite dt = C/lambda needs (ours: "
            "not at lambda 10, by its last evaluation at step 12000; lowest train acc after the fork 1.00)") \
        in out["no"]
    out = verdicts(collect(tmp_path, {"a": report(0, 1000, dts)}))  # fork.json from before branch_max_steps
    assert "a: every branch groks within its step limit, as a finite dt" in out["no"]


def test_a_tie_in_dt_is_named_and_put_down_to_the_evaluation_interval(tmp_path: Path) -> None:
    dts = {0.5: 2400, 1.0: 600, 2.0: 600, 3.0: 300}
    out = verdicts(collect(tmp_path, {"a": report(0, 1000, dts, branch_eval_every=100)}))
    assert "a: dt falls strictly as lambda rises (ours: lambda 5 and 10 tie at dt 600)" in out["no"]
    assert ("- dt is read at the branches' evaluations, so it is known only to their evaluation interval (every "
            "100 steps for a): two branches that grok within one interval get the same dt, so a tie can come from "
            "that resolution. A tie still counts as not falling.") in out["notes"]
    out = verdicts(collect(tmp_path, {"a": report(0, 1000, dts)}))  # no branch_eval_every: the conditions say it
    assert "evaluation interval (the conditions above state it)" in out["notes"]


def test_a_superseded_fork_is_compared_with_its_rerun(tmp_path: Path) -> None:
    old = report(1, 2500, {0.5: 9260, 1.0: 3840, 2.0: 1560, 3.0: None}, judged=False)
    new = report(1, 2500, {0.5: None, 1.0: 3800, 2.0: 2700, 3.0: None})
    page = verdicts(collect(tmp_path, {"old": old, "new": new}))["page"]
    section = page.split("## Earlier forks of the same runs (superseded, not scored)")[1].split("\n## ")[0]
    assert "| new (old) | 9260 / - | 3840 / 3800 | 1560 / 2700 | - / - |" in section
    assert ("moved dt by up to 1140 steps (new, lambda 10: 1560 before, 2700 now), and changed whether 1 "
            "branch grokked (new, lambda 2.5: at step 11760 before, not by step 12000 now)") in section


def test_branch_tables_show_the_loss_ratio_and_what_the_rule_could_not_judge(tmp_path: Path) -> None:
    fork = report(1, 2500, INVERSE)
    fork["branches"][0].update(max_loss_ratio=34.27, min_train_acc=0.837)
    fork["branches"][1].update(max_loss_ratio=None, stability_note="loss test not applied: the pre-fork level is 0")
    data = collect(tmp_path, {"a": fork})
    page = FR.render_forks(data, "wd_fork_fits.json")
    assert "| 2400 | yes | 20.00 | yes | after 2500 to 4900 | 0.837 | 34.3 | 0 / 0 |" in page
    assert "| yes (loss test not applied: the pre-fork level is 0) | after 2500 to 3700 | 1.000 | - |" in page
    assert ("one evaluation below 0.99 spans 0 steps although the dip may have lasted up to 199 steps between "
            "its neighbours") in page
    assert "Stable branches whose train accuracy fell below 0.99 in the window: a lambda 2.5 (lowest 0.837)." in page
    for b in data["forks"][0]["branches"]:  # JSON collected before these keys were carried
        for key in ("max_loss_ratio", "stability_note", "dip_steps", "spike_steps"):
            del b[key]
    page = FR.render_forks(data, "wd_fork_fits.json")
    assert "| yes | after 2500 to 4900 | 0.837 | - | - |" in page
    assert "not in wd_fork_fits.json (collected before they were carried from fork.json)" in page


def test_forks_closer_to_grokking_than_the_papers_shortest_lead_are_named(tmp_path: Path) -> None:
    # parent t_grok 9000: forks 100, 300 and 2000 steps before it; the paper's lead range starts at 500
    data = collect(tmp_path, {"a": report(0, 8900, INVERSE), "b": report(1, 8700, INVERSE),
                              "c": report(2, 7000, INVERSE)})
    (note,) = [line for line in verdicts(data)["notes"].splitlines() if line.startswith("- Steps from the fork")]
    assert "a 100, b 300, c 2000" in note
    assert "; a and b fork closer to grokking than that" in note and "c fork" not in note
    data = collect(tmp_path, {"c": report(2, 7000, INVERSE)})
    assert "closer to grokking" not in verdicts(data)["notes"]
    data = collect(tmp_path, {"a": report(0, 8900, {0.5: 200, 1.0: 100, 2.0: 60}),
                              "c": report(2, 7000, {0.5: 4000, 1.0: 2000, 2.0: 1000})})
    assert ("In the p = 53 seed average, a gives dt of at most 200 steps against up to 4000 for c, so the mean "
            "dt, and its fit, mostly follow c.") in verdicts(data)["notes"]


def test_an_interval_bound_near_one_prints_enough_digits_to_show_it_excludes_one() -> None:
    assert FR.ci_text((1.0022, 1.15)) == "[1.002, 1.15]"
    assert FR.ci_text((0.5, 1.0)) == "[0.50, 1.00]"  # a bound at 1 exactly stays 1.00
    claim, verdict = FR.alpha_claim("x", {"alpha": 1.08, "alpha_ci95": [1.0022, 1.15]})
    assert verdict is False and "[1.002, 1.15] does not hold 1" in claim
