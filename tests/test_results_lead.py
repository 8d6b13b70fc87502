"""scripts/results_pages/lead_render.py and lead_collect.py: the lead page from JSON and its collect step. Tiny
fake inputs with hand-computed expectations: the sign test and counts, claims judged over the grokked runs, the
interim status of a partial grid, which statuses count as done; collect on a planted run directory (events by
hand) and on one tiny real run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from grokmon.config import Config
from grokmon.metrics.grokking import lead
from grokmon.metrics.runs import fsd_events, probed_rows, run_events
from grokmon.offline import OfflineExcluded, offline_excluded
from grokmon.session import RunSession

# scripts/ is not a package: `python scripts/results.py` finds results_pages beside it on sys.path; so does this.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from results_pages import lead_collect as LC  # noqa: E402
from results_pages import lead_render as LR  # noqa: E402
from results_pages.exact_fsd import series_events  # noqa: E402

KEYS = [k for k, *_ in LC.STATISTICS]


# ---------------------------------------------------------------------------------------------
# render, from collected lines


def lead_run(name: str, t_grok: int | None, t_fsd: int | None, t_excluded: int | None,
             t_excluded_online: int | None = None, *, done: bool = True, status: str | None = None) -> dict:
    """A collected lead run with the same t_fsd under every statistic. t_excluded_online defaults to
    t_excluded + 50: never equal to the final-keys one, so a swapped column shows."""
    if t_excluded_online is None and t_excluded is not None:
        t_excluded_online = t_excluded + 50
    line: dict[str, Any] = {"name": name, "run_dir": f"/x/{name}", "done": done,
                            "status": status or ("completed" if done else "not started"),
                            "last_step": 9000 if done else None, "p": 113, "seed": 0, "weight_decay": 1.0, "sweep": "/x"}
    if not done:
        return line
    grokked = t_grok is not None
    cell = {"m": 5, "t_fsd": t_fsd, "t_fsd_online": None, "lead": lead(t_grok, t_fsd),
            "fsd_before_excluded": LC.before(t_fsd, t_excluded, grokked),
            "fsd_before_excluded_online": LC.before(t_fsd, t_excluded_online, grokked)}
    return {**line, "t_grok_50": t_grok, "t_grok": t_grok, "t_grok_99": t_grok, "t_excluded": t_excluded,
            "t_excluded_online": t_excluded_online, "key_freqs": [3, 7], "n_key": 2, "excluded_missing": None,
            "steps": 9000, "wall_s": 600.0, "by_statistic": {k: dict(cell) for k in KEYS}}


def lead_data(runs: list[dict], n_planned: int = 15) -> dict:
    return {"experiment": "lead", "command": "python scripts/results.py collect lead", "collected_at_commit": "abc",
            "trained_at_commit": "def", "conditions": "1 thread", "paper": LC.PAPER_LEAD,
            "sweeps": [{"dir": "/x", "profile": "fsd", "command": "grokmon sweep fsd", "overrides": [],
                        "n_planned": n_planned, "wall": {"sum_run_wall_s": 3600.0, "span_s": 7200.0}}],
            "statistics": [{"key": k, "label": label, "statistic": s, "m": m} for k, label, s, m in LC.STATISTICS],
            "n_planned": n_planned, "n_done": sum(r["done"] for r in runs),
            "not_done": [{"name": r["name"], "status": r["status"], "last_step": r["last_step"]} for r in runs
                         if not r["done"]],
            "runs": runs, "summary": LC.lead_summary(runs), "mu0": {"n_runs": 0}, "wall": {}}


def section(page: str, title: str) -> str:
    return page.split(title, 1)[1].split("\n## ", 1)[0]


def split(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def headings(table: str) -> list[str]:
    """The first table's column headings."""
    return split(next(line for line in table.splitlines() if line.startswith("|")))


def cells(table: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    return split(next(line for line in table.splitlines() if line.startswith(f"| {first} |")))


def column(table: str, first: str, heading: str) -> str:
    """The cell of row `first` under the (exact) column heading."""
    return cells(table, first)[headings(table).index(heading)]


def default_claims(page: str) -> dict[str, str]:
    """The default statistic's verdict groups: title -> its items."""
    text = section(page, "## What reproduces and what does not").split("**top-3 overlap**")[0]
    groups: dict[str, str] = {}
    for part in text.split("\n- ")[1:]:
        title, _, items = part.partition(":")
        groups[title] = items
    return groups


def four_of_five() -> list[dict]:
    # leads 1000, 2000, 500, 4000, -300: 4 of 5 positive; two-sided p = 2 * (1 + 5) / 32 = 0.375
    return [lead_run("a", 5000, 4000, 4500), lead_run("b", 6000, 4000, 3000),
            lead_run("c", 3000, 2500, 2600, 2400), lead_run("d", 9000, 5000, 6000), lead_run("e", 2000, 2300, 2400),
            lead_run("f", None, 3000, 5000), lead_run("g", None, None, None, done=False)]


@pytest.mark.unit
def test_four_of_five_positive_leads_give_the_sign_test_p_and_counts_by_hand() -> None:
    page = LR.render_lead(lead_data(four_of_five()), "fsd_lead.json")
    summary = section(page, "## Summary against the paper")
    # grokked a-e (f did not grok); with a lead 5; mean (1000+2000+500+4000-300)/5 = 1440; positive 4 of the 5
    # grokked; p over 5 non-zero leads; inside 500-3000: 1000, 2000, 500. Final keys: before in a (4000 < 4500),
    # c (2500 < 2600), d, e; not b. Online keys (t_excluded + 50, c's 2400): a, d, e; not b, not c (2500 > 2400).
    assert cells(summary, "top-5 overlap (the default)")[1:] == [
        "5", "5", "1440", "4/5", "0.375 (n = 5)", "3/5", "4/5", "3/5"]
    assert "**6 of 15 runs done.**" in page and "g (not started)" in page
    table = section(page, "## top-5 overlap (the default)")
    assert cells(table, "f")[-2:] == ["-", "-"]  # did not grok: no verdict either way
    claims = default_claims(page)
    assert "the lead is positive in every grokked run (ours 4 of 5 grokked runs: 1 has a negative lead" \
        in claims["Does not reproduce so far"]
    assert "the two-sided sign test gives p < 0.05 (ours p = 0.375 over 5 non-zero leads" \
        in claims["Cannot be judged from these data so far"]


@pytest.mark.unit
def test_each_excluded_baseline_lands_in_its_own_column() -> None:
    page = LR.render_lead(lead_data(four_of_five()), "fsd_lead.json")
    runs = section(page, "## Runs")
    assert column(runs, "c", "t_excluded (final keys)") == "2600"
    assert column(runs, "c", "t_excluded (online keys)") == "2400"
    assert column(runs, "a", "t_excluded (online keys)") == "4550"
    table = section(page, "## top-5 overlap (the default)")
    assert column(table, "c", "FSD before excluded (final keys)") == "yes"  # 2500 < 2600
    assert column(table, "c", "FSD before excluded (online keys)") == "no"  # 2500 > 2400


@pytest.mark.unit
def test_nine_positive_leads_inside_the_range_reproduce_the_paper() -> None:
    runs = [lead_run(f"r{i}", 4000 + 100 * i, 2500 + 100 * i, 3000 + 100 * i) for i in range(9)]  # leads 1500
    page = LR.render_lead(lead_data(runs, n_planned=9), "fsd_lead.json")
    claims = default_claims(page)
    p = 2 / 2 ** 9  # two-sided, 9 of 9 positive
    assert set(claims) == {"Reproduces", "Does not reproduce"} and claims["Does not reproduce"].strip() == "nothing."
    assert f"the two-sided sign test gives p < 0.05 (ours p = {p:.3g} over 9 non-zero leads" in claims["Reproduces"]
    assert "the lead is positive in every grokked run (ours 9 of 9 grokked runs;" in claims["Reproduces"]
    assert "before the excluded-loss rise (final keys) in every grokked run (ours 9 of 9 grokked runs;" \
        in claims["Reproduces"]


@pytest.mark.unit
def test_a_run_that_did_not_grok_gets_no_verdict() -> None:
    assert LC.before(3000, 5000, grokked=False) is None
    assert LC.before(3000, 5000, grokked=True) is True
    assert LC.before(5000, 5000, grokked=True) is False  # the same step is not before
    assert LC.before(None, 5000, grokked=True) is None


@pytest.mark.unit
def test_a_partial_grid_says_every_verdict_is_interim() -> None:
    runs = [lead_run(f"r{i}", 4000 + 100 * i, 2500 + 100 * i, 3000 + 100 * i) for i in range(9)]
    page = LR.render_lead(lead_data(runs, n_planned=15), "fsd_lead.json")
    assert "\n## What reproduces and what does not (interim: 9 of 15 runs done)\n" in page
    assert "\n## Summary against the paper (interim: 9 of 15 runs done)\n" in page
    verdicts = section(page, "## What reproduces and what does not")
    assert "**Interim, not final: 6 of the 15 planned runs are not done.**" in verdicts
    assert set(default_claims(page)) == {"Reproduces so far", "Does not reproduce so far"}
    assert "- Reproduces:" not in verdicts and "- Does not reproduce:" not in verdicts  # nothing reads as final
    full = LR.render_lead(lead_data(runs, n_planned=9), "fsd_lead.json")
    assert "interim" not in full.lower() and "so far" not in section(full, "## What reproduces and what does not")


@pytest.mark.unit
def test_every_grokked_run_claims_count_runs_without_a_lead_or_verdict_as_not_holding() -> None:
    # Six grokked runs: four with a lead of 1000 before the rise; one without t_fsd; one whose t_fsd comes
    # before t_grok but whose t_excluded is unknown. 4 of 4 non-zero leads are not "every run".
    runs = [lead_run(f"r{i}", 4000, 3000, 3500) for i in range(4)]
    runs += [lead_run("no-fsd", 4000, None, 3500), lead_run("no-excluded", 4000, 4000, None)]
    page = LR.render_lead(lead_data(runs), "fsd_lead.json")
    claims = default_claims(page)
    no = claims["Does not reproduce so far"]
    assert "the lead is positive in every grokked run (ours 4 of 6 grokked runs: 1 has no t_fsd, 1 has lead 0;" in no
    assert "every grokked run's lead is inside 500-3000 (ours 4 of 6 grokked runs: 1 has no t_fsd, 1 has a lead " \
        "outside 500-3000)" in no
    assert ("the FSD ceiling comes before the excluded-loss rise (final keys) in every grokked run (ours 4 of 6 "
            "grokked runs: 1 has no t_fsd and so no verdict, 1 has no t_excluded (final keys) and so no verdict;") in no
    # The sign test keeps its definition: the zero lead is dropped, 4 of 4 non-zero leads.
    assert "ours p = 0.125 over 4 non-zero leads" in claims["Cannot be judged from these data so far"]
    summary = section(page, "## Summary against the paper")
    assert cells(summary, "top-5 overlap (the default)")[1:6] == ["6", "5", "800", "4/6", "0.125 (n = 4)"]
    assert "Reproduces so far" in claims and "positive in every" not in claims["Reproduces so far"]


@pytest.mark.unit
def test_the_paper_row_does_not_claim_a_final_keys_baseline() -> None:
    page = LR.render_lead(lead_data(four_of_five()), "fsd_lead.json")
    summary = section(page, "## Summary against the paper")
    final = next(h for h in headings(summary) if "final keys" in h)
    assert "ours: final keys" in final  # the column names whose baseline it is
    assert column(summary, "paper", final) == "9/9 (their baseline; definition not public)"
    assert "paper 9/9 with its own excluded-loss baseline, whose definition is not public" in page


@pytest.mark.unit
def test_the_page_says_which_statuses_count_as_done_and_shows_a_stopped_runs_status() -> None:
    runs = [lead_run("a", 5000, 4000, 4500), lead_run("dv", None, 3000, 5000, status="diverged"),
            {**lead_run("s", None, None, None, done=False, status="stopped"), "last_step": 1500}]
    page = LR.render_lead(lead_data(runs), "fsd_lead.json")
    assert "A run is done when its status is completed or diverged" in page
    assert "A stopped run may be resumed by the sweep, so it is not done" in page
    assert "Not done: s (stopped, last step 1500)." in page and "older rule" not in page
    assert cells(section(page, "## Runs"), "dv")[4] == "diverged"
    assert cells(section(page, "## top-5 overlap (the default)"), "dv")[-2:] == ["-", "-"]  # did not grok
    # A JSON collected when only "completed" counted: its diverged run is not tabulated, and the page says so.
    old = [lead_run("a", 5000, 4000, 4500), lead_run("dv", None, None, None, done=False, status="diverged")]
    page = LR.render_lead(lead_data(old), "fsd_lead.json")
    assert "collected under an older rule: dv (diverged) ended but are not tabulated" in page


@pytest.mark.unit
def test_the_reason_t_excluded_is_missing_comes_from_the_excluded_offline_record() -> None:
    record = {"t_excluded": None, "key_freqs": [], "final_step": None, "n_checkpoints": 0, "n_probed": 3,
              "n_analysed": 2, "missing": "no checkpoints in the run directory"}
    new = {**lead_run("a", 5000, 4000, None), "excluded_offline": record}
    del new["excluded_missing"]
    old = {**lead_run("b", 5000, 4000, None), "excluded_missing": "cannot recompute from the checkpoints (x)"}
    page = LR.render_lead(lead_data([new, old]), "fsd_lead.json")
    runs = section(page, "## Runs")
    assert column(runs, "a", "t_excluded (final keys)") == "n/a" == column(runs, "b", "t_excluded (final keys)")
    assert "- a: t_excluded not computed: no checkpoints in the run directory." in runs
    assert "- b: t_excluded not computed: cannot recompute from the checkpoints (x)." in runs


# ---------------------------------------------------------------------------------------------
# the FSD events on a series (grokmon.metrics.runs.fsd_events, shared with the exact-mu0 recomputation)

STEPS = list(range(0, 5100, 100))
T_FSD, T_FSD_ONLINE, T_GROK, T_EXCLUDED_ONLINE = 1000, 1900, 2000, 800


def planted_rows() -> list[dict]:
    """Memorised from step 100; FSD 0.1 (p 0.5) until 900, then 0.9 (p 0.001); val_acc 1 from 2000; the logged
    excluded loss 0.01, then 1 from 800. By hand: the offline ceiling at 1000 (pre median 0.1, post 0.9, level
    0.82 held from there); the detector at 1900 (its 10-evaluation window is flat from 1000 to 1900); the online
    excluded-loss baseline at 800."""
    return [{"step": s, "train_acc": 0.5 if s == 0 else 1.0, "val_acc": 1.0 if s >= T_GROK else 0.1,
             "fsd": 0.9 if s >= T_FSD else 0.1, "fsd_p": 0.001 if s >= T_FSD else 0.5,
             "excluded_loss": 1.0 if s >= T_EXCLUDED_ONLINE else 0.01, "train_loss": 0.1, "val_loss": 1.0}
            for s in STEPS]


@pytest.mark.unit
def test_fsd_events_find_the_planted_ceiling_and_run_events_uses_them() -> None:
    probed = probed_rows(planted_rows())
    ev = fsd_events(probed, [r["fsd"] for r in probed], [r["fsd_p"] for r in probed], 0.05)
    assert ev == {"t_fsd": T_FSD, "t_fsd_online": T_FSD_ONLINE}
    logged = run_events(planted_rows())
    assert (logged["t_fsd"], logged["t_fsd_online"], logged["lead"]) == (T_FSD, T_FSD_ONLINE, T_GROK - T_FSD)
    assert fsd_events([], [], [], 0.05) == {"t_fsd": None, "t_fsd_online": None}
    with pytest.raises(ValueError):
        fsd_events(probed, [0.1], [0.5], 0.05)


@pytest.mark.unit
def test_a_recomputed_series_gets_the_same_events_on_the_evaluations_it_covers() -> None:
    probed = probed_rows(planted_rows())
    series = {r["step"]: (r["fsd"], r["fsd_p"]) for r in probed}
    assert series_events(probed, series, 0.05, T_GROK) == {"t_fsd": T_FSD, "t_fsd_online": T_FSD_ONLINE,
                                                           "lead": T_GROK - T_FSD}
    # Without the steps 1000-1400 the plateau first holds 5 evaluations at 1500; the detector's window at 2400.
    thinned = {s: v for s, v in series.items() if not 1000 <= s < 1500}
    assert series_events(probed, thinned, 0.05, T_GROK) == {"t_fsd": 1500, "t_fsd_online": 2400, "lead": 500}
    assert series_events(probed, {}, 0.05, T_GROK) == {"t_fsd": None, "t_fsd_online": None, "lead": None}


# ---------------------------------------------------------------------------------------------
# collect, on a planted run directory


def planted_run(root: Path, cfg: Config, status: str, rows: list[dict]) -> Path:
    run = root / status
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # The summary's own excluded_offline (t_excluded 4000) must not be used: collect recomputes it.
    kept = {"t_excluded": 4000, "key_freqs": [1], "final_step": 5000, "n_checkpoints": 1, "n_probed": 51,
            "n_analysed": 50, "missing": ""}
    (run / "summary.json").write_text(json.dumps({"status": status, "steps": 5000, "wall_s": 60.0,
                                                  "excluded_offline": kept}))
    return run


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> OfflineExcluded:
    """The checkpoint analysis and the spectra recomputation replaced by planted answers: t_excluded (final
    keys) 1500 with keys 3 and 7; FSD as logged."""
    fake = OfflineExcluded(run_dir="x", final_step=5000, key_freqs=(3, 7), steps=(), excluded_loss=(), train_acc=(),
                           n_probed=51, n_analysed=50, t_mem=100, t_excluded=1500,
                           t_excluded_online=T_EXCLUDED_ONLINE, missing="", seconds=0.1)

    def offline(run_dir: Any, rows: Any = None, *, cfg: Any = None, full: bool = True) -> OfflineExcluded:
        assert full is False  # what t_excluded needs only
        return fake

    monkeypatch.setattr("grokmon.offline.offline_excluded", offline)
    by_step = {r["step"]: (r["fsd"], r["fsd_p"]) for r in planted_rows()}
    monkeypatch.setattr(LC, "fsd_series", lambda *a, **k: dict(by_step))
    return fake


@pytest.mark.unit
def test_collect_puts_each_excluded_baseline_in_its_own_verdict(tiny: Config, tmp_path: Path,
                                                                 planted: OfflineExcluded) -> None:
    line = LC.collect_lead_run(planted_run(tmp_path, tiny, "completed", planted_rows()), "r", 0)
    assert line["done"] and (line["t_grok"], line["t_excluded"], line["t_excluded_online"]) == (
        T_GROK, 1500, T_EXCLUDED_ONLINE)
    assert line["excluded_offline"] == planted.record() and line["key_freqs"] == [3, 7]  # offline's record, as is
    for key in KEYS:
        c = line["by_statistic"][key]
        assert (c["t_fsd"], c["lead"]) == (T_FSD, T_GROK - T_FSD)
        assert c["fsd_before_excluded"] is True  # 1000 < 1500 (final keys)
        assert c["fsd_before_excluded_online"] is False  # 1000 > 800 (online keys)


@pytest.mark.unit
def test_a_diverged_run_is_done_and_a_stopped_one_is_not(tiny: Config, tmp_path: Path,
                                                         planted: OfflineExcluded) -> None:
    never = [{**r, "val_acc": 0.1} for r in planted_rows()]  # diverged before grokking
    line = LC.collect_lead_run(planted_run(tmp_path, tiny, "diverged", never), "dv", 0)
    assert line["done"] and line["status"] == "diverged" and line["t_grok"] is None
    assert line["t_excluded"] == 1500 and all(
        c["fsd_before_excluded"] is None and c["fsd_before_excluded_online"] is None
        for c in line["by_statistic"].values())  # did not grok: no verdict
    stopped = LC.collect_lead_run(planted_run(tmp_path, tiny, "stopped", planted_rows()), "s", 0)
    assert not stopped["done"] and stopped["status"] == "stopped" and stopped["last_step"] == STEPS[-1]
    assert "by_statistic" not in stopped  # may be resumed: its events are provisional, not tabulated


# ---------------------------------------------------------------------------------------------
# collect, on a real run


@pytest.mark.engine
def test_collect_lead_recomputes_the_logged_fsd_of_a_real_run(tiny: Config, tmp_path: Path) -> None:
    cfg = tiny.replace("metrics", metrics_every=1).replace("train", checkpoint_every=20, max_steps=100)
    RunSession.new(cfg, tmp_path / "run").run(handle_signals=False)
    line = LC.collect_lead_run(tmp_path / "run", "run", 0)
    assert line["done"] and line["p"] == 23
    check = line["mu0_check"]
    # This commit logs FSD with the exact mu0 and the same null draws: the recomputation must agree exactly.
    assert check["n_evaluations"] == 6 and check["max_abs_fsd_diff"] < 1e-12 and check["max_abs_p_diff"] == 0
    assert check["t_fsd_changed"] is False
    assert set(line["by_statistic"]) == set(KEYS)
    # t_excluded is grokmon.offline's recomputation, unchanged.
    assert line["excluded_offline"] == offline_excluded(tmp_path / "run", full=False).record()
    # The verdicts by their definition, whether this run grokked or not (the grokked case with known times is
    # test_collect_puts_each_excluded_baseline_in_its_own_verdict).
    for c in line["by_statistic"].values():
        for verdict, t_excluded in ((c["fsd_before_excluded"], line["t_excluded"]),
                                    (c["fsd_before_excluded_online"], line["t_excluded_online"])):
            known = line["t_grok"] is not None and c["t_fsd"] is not None and t_excluded is not None
            assert verdict == ((c["t_fsd"] < t_excluded) if known else None)
