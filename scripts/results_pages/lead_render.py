"""The lead page (docs/results/fsd_lead.md), rendered from the JSON of lead_collect.py alone: the summary against
the paper, the verdicts, the runs, each statistic, the mu0 check, wall time and the earlier runs. Reads no run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from grokmon.experiments.fork import fmt_cell
from grokmon.metrics.grokking import sign_test

from .common import header, p_text, table, verdict_paragraph, wall_lines
from .lead_collect import DONE_STATUSES, LEAD_RANGE, STATISTICS, grokked_counts


def render_lead(data: dict[str, Any], json_name: str) -> str:
    lines = header(data, "FSD lead over grokking: the lead table", json_name)
    lines += ["Sweeps:", ""] + [f"    {s['command']}" for s in data["sweeps"]] + [""]
    lines += done_paragraph(data)
    lines += weight_decay_notes(data)
    lines += ["Definitions ([metrics.md](../metrics.md)): t_grok is the first evaluation with val_acc >= 0.95 "
              "(0.5 and 0.99 crossings beside it); t_fsd is the offline FSD ceiling, recomputed here from each "
              "run's stored component spectra with the null's exact mean mu0 (m/K for the top-m overlap, 0 for "
              "Pearson) and the run's own permutation draws; lead = t_grok - t_fsd. t_excluded (final keys) is the "
              "excluded loss's lasting rise with the final checkpoint's key frequencies, recomputed from the "
              "checkpoints; t_excluded (online keys) is the same rule on the excluded loss logged during training. "
              "The FSD-before-excluded verdict is given only for runs that grokked.", ""]
    lines += summary_section(data) + verdict_section(data) + runs_section(data) + statistic_sections(data)
    lines += mu0_section(data) + wall_section(data) + earlier_section(data)
    return "\n".join(lines).rstrip() + "\n"


def interim(data: dict[str, Any]) -> str:
    """" (interim: 6 of 15 runs done)" for a heading while the grid is partial, else ""."""
    n_done, n_planned = data["n_done"], data["n_planned"]
    return f" (interim: {n_done} of {n_planned} runs done)" if n_done < n_planned else ""


def excluded_missing(run: dict[str, Any]) -> str:
    """Why a done run's t_excluded (final keys) was not computed, "" when it was: its excluded_offline record's
    reason (grokmon.offline; a JSON collected before the record was kept has it as excluded_missing)."""
    record = run.get("excluded_offline")
    return (record.get("missing") if record else run.get("excluded_missing")) or ""


def done_paragraph(data: dict[str, Any]) -> list[str]:
    """How many runs are done, which statuses count as done, and the runs that are not, with their status."""
    text = (f"**{data['n_done']} of {data['n_planned']} runs done.** A run is done when its status is "
            f"{' or '.join(DONE_STATUSES)}: it has ended (a run that diverged before grokking gets no "
            "FSD-before-excluded verdict). A stopped run may be resumed by the sweep, so it is not done. Every "
            "count below is over the done runs only.")
    stale = [r for r in data["runs"] if r["status"] in DONE_STATUSES and not r["done"]]
    if stale:  # a JSON collected when only "completed" counted
        text += (" This JSON was collected under an older rule: " + ", ".join(f"{r['name']} ({r['status']})"
                 for r in stale) + " ended but are not tabulated; collect again to include them.")
    if data["not_done"]:
        text += " Not done: " + ", ".join(
            f"{r['name']} ({r['status']}" + (f", last step {r['last_step']})" if r["last_step"] is not None else ")")
            for r in data["not_done"]) + "."
    return [text, ""]


def summary_section(data: dict[str, Any]) -> list[str]:
    paper, lo, hi = data["paper"], *LEAD_RANGE
    # The paper's excluded-loss baseline is not public: its 9/9 is theirs, not a final-keys count.
    head = ["", "runs grokked", "runs with a lead", "mean lead", "lead > 0 (of the grokked runs)",
            "two-sided sign test p (over the non-zero leads)", f"lead inside {lo}-{hi} (of the grokked runs)",
            "FSD before excluded (of the grokked runs; ours: final keys)",
            "FSD before excluded (of the grokked runs; ours: online keys)"]
    body = [["paper", "-", paper["n"], paper["mean_lead"], f"{paper['n_positive']}/{paper['n']}",
             f"~{paper['sign_test_p']} (n = {paper['n']})", "all (their range)",
             "{}/{} (their baseline; definition not public)".format(*paper["fsd_before_excluded"]), "-"]]
    for st in data["statistics"]:
        s, g = data["summary"][st["key"]], grokked_counts(data["runs"], st["key"])
        n = g["n_grokked"]
        body.append([st["label"], n, s["n_leads"], fmt_cell(s["mean_lead"], ".0f"), f"{g['n_lead_positive']}/{n}",
                     f"{p_text(s['sign_test_p'])} (n = {s['sign_test_n']})", f"{g['n_lead_inside']}/{n}",
                     f"{g['n_before']}/{n}", f"{g['n_before_online']}/{n}"])
    return [f"## Summary against the paper{interim(data)}", ""] + table(head, body) + [
        "", f"The paper's grid is {paper['grid']}. A sign test on n non-zero leads cannot go below p = 2^(1-n) "
        "(two-sided), so it needs 6 or more non-zero leads, all of one sign, to reach p < 0.05.", ""]


def verdict_section(data: dict[str, Any]) -> list[str]:
    out = [f"## What reproduces and what does not{interim(data)}", ""]
    if interim(data):
        left = data["n_planned"] - data["n_done"]
        out += [f"**Interim, not final: {left} of the {data['n_planned']} planned runs are not done.** Each verdict "
                f"below says what the {data['n_done']} done runs show so far; a claim that holds so far can still "
                "fail, and a mean or a test can still move either way, as the rest finish.", ""]
    return out + lead_verdicts(data) + [""]


def runs_section(data: dict[str, Any]) -> list[str]:
    runs = data["runs"]
    out = ["## Runs", ""]
    out += table(["run", "p", "seed", "weight decay", "status", "t_grok (0.5 / 0.95 / 0.99)",
                  "t_excluded (final keys)", "t_excluded (online keys)", "key frequencies (final checkpoint)",
                  "steps", "wall time"],
                 [[r["name"], fmt_cell(r["p"]), fmt_cell(r["seed"]), fmt_cell(r["weight_decay"], "g"), r["status"]]
                  + ([f"{fmt_cell(r['t_grok_50'])} / {fmt_cell(r['t_grok'])} / {fmt_cell(r['t_grok_99'])}",
                      fmt_cell(r["t_excluded"]) if not excluded_missing(r) else "n/a",
                      fmt_cell(r["t_excluded_online"]), ", ".join(map(str, r["key_freqs"])) or "-",
                      fmt_cell(r["steps"]), fmt_cell(r["wall_s"] and r["wall_s"] / 60, ".0f") + " min"]
                     if r["done"] else ["-"] * 6) for r in runs]) + [""]
    missing = [f"- {r['name']}: t_excluded not computed: {excluded_missing(r)}." for r in runs
               if r["done"] and excluded_missing(r)]
    return out + missing + ([""] if missing else [])


def statistic_sections(data: dict[str, Any]) -> list[str]:
    runs, lo, hi = data["runs"], *LEAD_RANGE
    done = [r for r in runs if r["done"]]
    out = []
    for st in data["statistics"]:
        out += [f"## {st['label']}", ""]
        out += table(["run", "m", "t_grok", "t_fsd (offline)", "t_fsd (online detector)", "lead",
                      "FSD before excluded (final keys)", "FSD before excluded (online keys)"],
                     [[r["name"], fmt_cell(c["m"]), fmt_cell(r["t_grok"]), fmt_cell(c["t_fsd"]),
                       fmt_cell(c["t_fsd_online"]), fmt_cell(c["lead"]), fmt_cell(c["fsd_before_excluded"]),
                       fmt_cell(c["fsd_before_excluded_online"])]
                      for r in done if (c := r["by_statistic"][st["key"]])]) + [""]
        if len(done) < len(runs):
            out += [f"The {len(runs) - len(done)} runs not done are listed under Runs above.", ""]
        s, g = data["summary"][st["key"]], grokked_counts(runs, st["key"])
        out += [f"Mean lead {fmt_cell(s['mean_lead'], '.0f')} steps over {s['n_leads']} runs with a lead "
                f"({s['n_done']} done, {g['n_grokked']} grokked); positive in {g['n_lead_positive']} of "
                f"{g['n_grokked']} grokked runs{not_positive(g)}; two-sided sign test over the {s['sign_test_n']} "
                f"non-zero leads p = {p_text(s['sign_test_p'])}; inside {lo}-{hi}: {g['n_lead_inside']} of "
                f"{g['n_grokked']} grokked runs.", ""]
    return out


def reasons(counts: Sequence[tuple[int, str]]) -> str:
    """': 2 have no t_fsd, 1 has lead 0' from (count, what) pairs, leaving out zero counts; '' when all are."""
    parts = [f"{n} {'has' if n == 1 else 'have'} {what}" for n, what in counts if n]
    return f": {', '.join(parts)}" if parts else ""


def not_positive(g: dict[str, int]) -> str:
    """Why grokked runs are not counted as a positive lead."""
    return reasons([(g["n_no_fsd"], "no t_fsd"), (g["n_lead_zero"], "lead 0"),
                    (g["n_lead_negative"], "a negative lead")])


def lead_verdicts(data: dict[str, Any]) -> list[str]:
    """The paper's claims per statistic. "In every run" is judged over the grokked runs: a grokked run without a
    lead or a verdict (no t_fsd, no t_excluded) is a run where the claim is not shown, so the claim does not hold."""
    paper, out, lo, hi = data["paper"], [], *LEAD_RANGE
    for st in data["statistics"]:
        s, g = data["summary"][st["key"]], grokked_counts(data["runs"], st["key"])
        n, n_nonzero = g["n_grokked"], s["sign_test_n"]
        outside = n - g["n_no_fsd"] - g["n_lead_inside"]
        claims = [
            (f"the lead is positive in every grokked run (ours {g['n_lead_positive']} of {n} grokked runs"
             f"{not_positive(g)}; paper {paper['n_positive']}/{paper['n']})",
             (g["n_lead_positive"] == n) if n else None),
            (f"every grokked run's lead is inside {lo}-{hi} (ours {g['n_lead_inside']} of {n} grokked runs"
             f"{reasons([(g['n_no_fsd'], 'no t_fsd'), (outside, f'a lead outside {lo}-{hi}')])})",
             (g["n_lead_inside"] == n) if n else None),
            (f"the mean lead is inside {lo}-{hi} (ours {fmt_cell(s['mean_lead'], '.0f')} over {s['n_leads']} "
             f"leads, paper {paper['mean_lead']})", (lo <= s["mean_lead"] <= hi) if s["n_leads"] else None),
            (f"the two-sided sign test gives p < 0.05 (ours p = {p_text(s['sign_test_p'])} over {n_nonzero} "
             f"non-zero leads, paper ~{paper['sign_test_p']})"
             + ("" if n_nonzero >= 6 else "; it needs 6 or more non-zero leads"),
             (s["sign_test_p"] < 0.05) if n_nonzero >= 6 else None),
            (f"the FSD ceiling comes before the excluded-loss rise (final keys) in every grokked run (ours "
             f"{g['n_before']} of {n} grokked runs"
             + reasons([(g["n_no_fsd"], "no t_fsd and so no verdict"),
                        (g["n_no_excluded"], "no t_excluded (final keys) and so no verdict"),
                        (g["n_not_before"], "the rise at or before t_fsd")])
             + "; paper {}/{} with its own excluded-loss baseline, whose definition is not public)".format(
                 *paper["fsd_before_excluded"]),
             (g["n_before"] == n) if n else None),
        ]
        out += [f"**{st['label']}** ({s['n_done']} of {data['n_planned']} runs done):", ""]
        out += verdict_paragraph(claims, interim=bool(interim(data))) + [""]
    return out


def weight_decay_notes(data: dict[str, Any]) -> list[str]:
    """Say once which primes ran at a weight decay other than the profile's, and why, if the data say why."""
    out = []
    earlier = (data.get("earlier") or {}).get("by_statistic", {})
    first = next(iter(earlier.values()), [])
    for s in data["sweeps"]:
        wd = [o.split("=", 1)[1] for o in s["overrides"] if o.startswith("optim.weight_decay=")]
        if not wd:
            continue
        primes = sorted({r["p"] for r in data["runs"] if r["sweep"] == s["dir"] and r["p"] is not None})
        text = f"p = {', '.join(map(str, primes))} runs at weight decay {wd[0]} (the other primes at the profile's)."
        for p in primes:
            failed = [e for e in first if e.get("p") == p and e.get("t_grok") is None and str(e.get("wd")) != wd[0]]
            if failed:
                text += (f" This was chosen after seeing data: the earlier seed-0 run of p = {p} at weight decay "
                         f"{failed[0]['wd']:g} did not grok ([below](#earlier-seed-0-runs-not-pooled))")
                text += "; Nanda et al. needed weight decay 5 for p = 53 too." if p == 53 else "."
        out += [text, ""]
    return out


def mu0_section(data: dict[str, Any]) -> list[str]:
    rows = [r for r in data["runs"] if r["done"] and "mu0_check" in r]
    if not rows:
        return []
    m = data["mu0"]
    out = ["## FSD with the exact mu0 against FSD as logged", "",
           "The runs logged FSD with the null mean mu0 of their own code; here FSD is recomputed with the exact mu0 "
           "from the same spectra and the same permutation draws (so the p-values must agree exactly).", ""]
    out += table(["run", "statistic", "evaluations compared", "largest |FSD exact - FSD logged|", "at step",
                  "largest |p exact - p logged|", "t_fsd logged", "t_fsd exact", "t_fsd changed",
                  "online detector logged / exact"],
                 [[r["name"], c["statistic"], c["n_evaluations"], fmt_cell(c["max_abs_fsd_diff"], ".2e"),
                   fmt_cell(c["at_step"]), fmt_cell(c["max_abs_p_diff"], ".1e"), fmt_cell(c["t_fsd_logged"]),
                   fmt_cell(c["t_fsd_exact"]), fmt_cell(c["t_fsd_changed"]),
                   f"{fmt_cell(c['t_fsd_online_logged'])} / {fmt_cell(c['t_fsd_online_exact'])}"]
                  for r in rows if (c := r["mu0_check"])])
    out += ["", f"Over {m['n_runs']} runs: FSD moved by at most {fmt_cell(m['max_abs_fsd_diff'], '.2e')}; t_fsd "
                f"changed on {m['n_t_fsd_changed']} of them.", ""]
    return out


def wall_section(data: dict[str, Any]) -> list[str]:
    return ["## Wall time", ""] + wall_lines(data["sweeps"])



def earlier_section(data: dict[str, Any]) -> list[str]:
    earlier = data.get("earlier")
    if not earlier:
        return []
    out = ["## Earlier seed-0 runs (not pooled)", "",
           f"From [{Path(earlier['source']).name}]({Path(earlier['source']).name}), made by the script this page "
           "replaces. Their run directories are gone, so they cannot be recomputed: FSD there used a simulated mu0 "
           "and t_excluded the logged excluded loss (online keys). They are shown for reference and are not in any "
           "count above.", ""]
    for label, rows in earlier["by_statistic"].items():
        leads = [r["lead"] for r in rows if r["lead"] is not None]
        k, n, p = sign_test(leads)
        out += [f"{label}:", ""]
        out += table(["run", "p", "seed", "weight decay", "t_grok", "t_fsd (simulated mu0)", "t_excluded (online keys)",
                      "lead", "FSD before excluded (online keys, as recorded)"],
                     [[r["run"], r["p"], r["seed"], fmt_cell(r["wd"], "g"), fmt_cell(r["t_grok"]), fmt_cell(r["t_fsd"]),
                       fmt_cell(r["t_excluded"]), fmt_cell(r["lead"]),
                       fmt_cell(r["fsd_before_excluded"]) + (" (did not grok)" if r["t_grok"] is None else "")]
                      for r in rows])
        out += ["", f"Positive in {k} of {n}; two-sided sign test p = {p_text(p if leads else None)}.", ""]
    first = next(iter(earlier["by_statistic"].values()), [])
    new = {(r["p"], r["seed"], r["weight_decay"]): r for r in data["runs"] if r["done"]}
    both = [(e, new[key]) for e in first if (key := (e["p"], e["seed"], e["wd"])) in new]
    if both:
        out += ["Runs in both sets (same p, seed and weight decay), earlier / now, first statistic: " + "; ".join(
            f"{e['run']}: t_grok {fmt_cell(e['t_grok'])} / {fmt_cell(r['t_grok'])}, t_fsd {fmt_cell(e['t_fsd'])} / "
            f"{fmt_cell(r['by_statistic'][STATISTICS[0][0]]['t_fsd'])}, t_excluded (online keys) "
            f"{fmt_cell(e['t_excluded'])} / {fmt_cell(r['t_excluded_online'])}" for e, r in both) + ".", ""]
    return out
