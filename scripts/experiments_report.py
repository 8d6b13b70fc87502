"""Collect fork directories into docs/results tables: the weight-decay fork per prime (wd_fork) and the
weight-decay schedules (schedule). Reads only fork.json / summary.json / metrics.jsonl files. Usage:

    python scripts/experiments_report.py wd-fork RUN_DIR/forks ... [--json OUT.json]
    python scripts/experiments_report.py schedule --constant RUN_DIR --fsd FORK_DIR --step FORK_DIR [--kappa 2]

Each FORK_DIR is a `grokmon fork` output directory (it holds fork.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grokmon.experiments.fork import analyse_fork, fmt_cell
from grokmon.metrics.forkfit import fit_inverse
from grokmon.rundir.readers import read_jsonl

PAPER_R2 = "0.89-0.99"


def _load(fork_dir: Path) -> dict[str, Any]:
    return json.loads((fork_dir / "fork.json").read_text())


def _p(report: dict[str, Any]) -> int:
    if "task" in report:
        return int(report["task"]["p"])
    return int(json.loads((Path(report["run_dir"]) / "config.json").read_text())["task"]["p"])



def wd_fork(dirs: list[Path], json_out: Path | None) -> str:
    reports = sorted((_load(d) for d in dirs), key=_p)
    lines = ["| p | lambda0 | fork step (rule) | parent t_grok | branches fitted | C | R^2 (ours) | "
             "R^2 (single-evaluation stability) | strictly monotone | CV of memorisation norm | paper R^2 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        fit, spec = r["fit"], r.get("fit_spec_stability") or analyse_fork(r["fork_step"], r["branches"], "stable_spec")
        lines.append(f"| {_p(r)} | {r['lambda0']:g} | {r['fork_step']} ({r['fork_rule']}) | {fmt_cell(r['parent']['t_grok'])} | "
                     f"{fit['n_fit']} of {len(r['branches'])} | {fmt_cell(fit['C'], '.0f')} | {fmt_cell(fit['r2'], '.3f')} | "
                     f"{fmt_cell(spec['r2'], '.3f')} ({spec['n_fit']} fitted) | {fmt_cell(fit['monotone'])} | "
                     f"{fmt_cell(fit['mem_norm_cv'], '.3f')} | {PAPER_R2} |")
    lines.append("")
    for r in reports:
        lines += [f"p = {_p(r)} (lambda0 {r['lambda0']:g}, fork at step {r['fork_step']}):", "",
                  "| lambda | lambda / lambda0 | t_grok | dt | stable (ours) | stable (single-evaluation rule) | "
                  "memorisation norm | min train acc after the fork |", "|---|---|---|---|---|---|---|---|"]
        for b in r["branches"]:
            lines.append(f"| {b['weight_decay']:g} | {b['weight_decay'] / r['lambda0']:g} | {fmt_cell(b['t_grok'])} | "
                         f"{fmt_cell(b['dt'])} | {fmt_cell(b['stable'])} | {fmt_cell(b.get('stable_spec'))} | "
                         f"{fmt_cell(b['mem_norm'], '.2f')} | {fmt_cell(b['min_train_acc'], '.3f')} |")
        lines.append("")
    by_p: dict[int, list[dict[str, Any]]] = {}
    for r in reports:
        by_p.setdefault(_p(r), []).append(r)
    seed = lambda r: r.get("task", {}).get("seed", 0)  # noqa: E731
    averaged = [(p, rs) for p, rs in by_p.items() if len({seed(r) for r in rs}) == len(rs) > 1]
    if averaged:
        lines += ["Seed-averaged dt (the paper fits these): for each lambda / lambda0, the mean dt over the seeds "
                  "whose branch grokked and is stable (ours); the fit needs every seed at that factor.", "",
                  "| p | seeds | factors fitted | C | R^2 | strictly monotone | mean dt per factor |",
                  "|---|---|---|---|---|---|---|"]
        for p, rs in averaged:
            factors = sorted({round(b["weight_decay"] / r["lambda0"], 9) for r in rs for b in r["branches"]})
            mean_dt = {}
            for k in factors:
                dts = [b["dt"] for r in rs for b in r["branches"]
                       if round(b["weight_decay"] / r["lambda0"], 9) == k and b["stable"] and b["dt"] is not None]
                if len(dts) == len(rs):
                    mean_dt[k] = sum(dts) / len(dts)
            fit = fit_inverse(list(mean_dt), list(mean_dt.values())) if mean_dt else None
            seeds = ",".join(str(r["task"]["seed"]) for r in rs if "task" in r)
            shown = ", ".join(f"{k:g}: {v:.0f}" for k, v in mean_dt.items())
            lines.append(f"| {p} | {seeds} | {len(mean_dt)} of {len(factors)} | {fmt_cell(fit.c if fit else None, '.0f')} | "
                         f"{fmt_cell(fit.r2 if fit else None, '.3f')} | {fmt_cell(fit.monotone if fit else None)} | {shown} |")
        lines.append("")
    if json_out is not None:
        json_out.write_text(json.dumps({f"p{_p(r)}-s{r.get('task', {}).get('seed', 0)}-at{r['fork_step']}": r
                                        for r in reports}, indent=1) + "\n")
    return "\n".join(lines)


def _t_grok(run_dir: Path, after: int = 0) -> tuple[int | None, float | None]:
    """First evaluation at or after `after` with val_acc >= 0.95, and the lowest train acc from `after` on."""
    rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["step"] >= after]
    t = next((r["step"] for r in rows if r["val_acc"] >= 0.95), None)
    return t, min((r["train_acc"] for r in rows[1:]), default=None)


def schedule(constant: Path, fsd: Path, step: Path, kappa: float) -> str:
    const_t, _ = _t_grok(constant)
    lines = ["| schedule | raise at step | weight decay after | t_grok | stable | lowest train acc after the raise |",
             "|---|---|---|---|---|---|",
             f"| constant | - | {json.loads((constant / 'config.json').read_text())['optim']['weight_decay']:g} | "
             f"{fmt_cell(const_t)} | - | - |"]
    for name, d in (("fsd", fsd), ("step", step)):
        r = _load(d)
        for b in r["branches"]:
            if abs(b["weight_decay"] / r["lambda0"] - kappa) > 1e-9 and name == "step":
                continue
            k = b["weight_decay"] / r["lambda0"]
            lines.append(f"| {name} (kappa {k:g}) | {r['fork_step']} | {b['weight_decay']:g} | {fmt_cell(b['t_grok'])} | "
                         f"{fmt_cell(b['stable'])} | {fmt_cell(b['min_train_acc'], '.3f')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("wd-fork")
    a.add_argument("dirs", nargs="+", type=Path)
    a.add_argument("--json", type=Path)
    b = sub.add_parser("schedule")
    b.add_argument("--constant", type=Path, required=True)
    b.add_argument("--fsd", type=Path, required=True)
    b.add_argument("--step", type=Path, required=True)
    b.add_argument("--kappa", type=float, default=2.0)
    args = ap.parse_args()
    if args.what == "wd-fork":
        print(wd_fork(args.dirs, args.json))
    else:
        print(schedule(args.constant, args.fsd, args.step, args.kappa))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
