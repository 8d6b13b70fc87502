"""The FSD lead experiment (docs/metrics.md): train the `fsd` profile over primes x seeds, then tabulate.

    python scripts/fsd_lead.py run      [--primes 53,71,97,113,131] [--seeds 0] [--root runs/fsd_lead]
    python scripts/fsd_lead.py analyse  [--root runs/fsd_lead] [--out docs/results/fsd_lead.md]

`run` trains each (p, seed) headless into ROOT/p{p}-s{seed}/, skipping finished runs and resuming
interrupted ones, so it can be stopped and restarted. `analyse` reads the run directories and writes the
lead table for the default statistic and, from the stored component spectra, for the alternatives
(top-m overlap with m = 3, 5, the number of key frequencies; Pearson), with the sign test for each.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grokmon.fourier import basis_for_op, freq_energy_1d, spectrum_share
from grokmon.metrics.fsd import fsd
from grokmon.metrics.grokking import excluded_loss_baseline, fsd_ceiling_offline, grok_times, lead, sign_test
from grokmon.metrics.probe import null_rng
from grokmon.metrics.progress import key_frequencies
from grokmon.rundir.readers import checkpoints, load_checkpoint, read_jsonl

PAPER = "lead 500-3000 steps, mean 1722, positive in 9/9, two-sided sign test p ~ 0.004 (Sivasankar 2026)"


def run(args: argparse.Namespace) -> None:
    root = Path(args.root)
    for p in _ints(args.primes):
        for seed in _ints(args.seeds):
            wd = dict(_wd_overrides(args.wd)).get(p)
            out = root / (f"p{p}-s{seed}" + (f"-wd{wd:g}" if wd is not None else ""))
            summary = out / "summary.json"
            if summary.exists() and json.loads(summary.read_text()).get("status") == "completed":
                print(f"p={p} seed={seed}: done already", flush=True)
                continue
            sets = [f"task.p={p}", f"task.seed={seed}", f"model.seed={seed}",
                    f"train.stop_after_grok={args.after_grok}", f"train.max_steps={args.max_steps}"]
            sets += [f"optim.weight_decay={wd}"] if wd is not None else []
            if checkpoints(out):
                cmd = ["run", "--resume", str(out)]
            else:
                cmd = ["run", "fsd", "--headless", "--out", str(out)] + [x for s in sets for x in ("--set", s)]
            lock = _lock(out)
            if lock is None:
                print(f"p={p} seed={seed}: another runner has it", flush=True)
                continue
            try:
                print(f"p={p} seed={seed}: grokmon {' '.join(cmd)}", flush=True)
                subprocess.run([sys.executable, "-m", "grokmon", *cmd], check=False, env=os.environ.copy())
            finally:
                lock.unlink(missing_ok=True)


def _lock(out: Path) -> Path | None:
    """One runner per run directory, so several runners can share a grid; a dead runner's lock is taken over."""
    lock = out.with_name(out.name + ".lock")
    out.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return None  # held by a live runner
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)  # stale
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return lock
    return None


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _wd_overrides(text: str) -> list[tuple[int, float]]:
    """'53:5,71:2' -> [(53, 5.0), (71, 2.0)]: primes that need a larger weight decay to grok."""
    return [(int(a), float(b)) for a, b in (item.split(":") for item in text.split(",") if item)]


# ---------------------------------------------------------------------------------------------


def analyse(args: argparse.Namespace) -> None:
    root = Path(args.root)
    runs = sorted((d for d in root.iterdir() if (d / "metrics.jsonl").exists()), key=_order)
    statistics = {"overlap m=5 (default)": ("overlap", 5), "overlap m=3": ("overlap", 3),
                  "overlap m=n_key": ("overlap", None), "pearson": ("pearson", None)}
    table: dict[str, list[dict[str, Any]]] = {name: [] for name in statistics}
    args.in_progress = []
    for d in runs:
        if _status(d) != "completed":  # t_fsd needs the post-grokking FSD level: only finished runs count
            rows = read_jsonl(d / "metrics.jsonl")
            args.in_progress.append(f"{d.name} (status {_status(d)}, step {rows[-1]['step'] if rows else 0})")
            continue
        cfg = json.loads((d / "config.json").read_text())
        rows = read_jsonl(d / "metrics.jsonl")
        spectra = read_jsonl(d / "spectra.jsonl")
        steps = [r["step"] for r in rows]
        times = grok_times(steps, [r["val_acc"] for r in rows])
        probed = [r for r in rows if r.get("excluded_loss") is not None]
        t_excl = excluded_loss_baseline([r["step"] for r in probed], [r["excluded_loss"] for r in probed],
                                        [r["train_acc"] for r in probed]) if probed else None
        n_key = _final_key_count(d, cfg)
        alpha = cfg["metrics"]["alpha"]
        acc = {r["step"]: r for r in rows}
        for name, (stat, m) in statistics.items():
            series = []
            for s in spectra:
                names = [k for k in s if k != "step"]
                e = np.array([s[k] for k in names])
                res = fsd(e[:-1], e[-1], n_perm=cfg["metrics"]["n_perm"],
                          seed=null_rng(cfg["model"]["seed"], s["step"]), statistic=stat,
                          m=m if m is not None else max(1, n_key), alpha=alpha)
                series.append((s["step"], res.fsd, res.p_value))
            st = [x[0] for x in series]
            t_fsd = fsd_ceiling_offline(st, [x[1] for x in series], [x[2] for x in series],
                                        [acc[x]["train_acc"] for x in st], [acc[x]["val_acc"] for x in st], alpha)
            table[name].append({
                "run": d.name, "p": cfg["task"]["p"], "seed": cfg["model"]["seed"],
                "wd": cfg["optim"]["weight_decay"], "status": _status(d), "t_grok": times.t95,
                "t_fsd": t_fsd, "t_excluded": t_excl, "lead": lead(times.t95, t_fsd),
                "fsd_before_excluded": None if t_fsd is None or t_excl is None else t_fsd < t_excl,
                "n_key": n_key,
            })
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_markdown(table, args))
    out.with_suffix(".json").write_text(json.dumps(table, indent=2) + "\n")
    print(out.read_text())


def _order(d: Path) -> tuple[int, int, str]:
    """p71-s0, p53-s0-wd5: by prime, then seed, then the rest of the name."""
    m = re.match(r"p(\d+)-s(\d+)(.*)", d.name)
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else (0, 0, d.name)


def _status(d: Path) -> str:
    try:
        return json.loads((d / "summary.json").read_text()).get("status", "?")
    except (OSError, json.JSONDecodeError):
        return "running"


def _final_key_count(d: Path, cfg: dict[str, Any]) -> int:
    """Key frequencies of the final checkpoint's W_L (docs/metrics.md: offline, take them from the end)."""
    found = checkpoints(d)
    if not found:
        return 5
    state = load_checkpoint(max(found.items())[1]).model
    w_outs = sorted(k for k in state if k.endswith("mlp.W_out"))
    M = (state[w_outs[-1]] @ state["W_U"]).T if w_outs else state["W_E"]
    basis = basis_for_op(cfg["task"]["op"], cfg["task"]["p"])
    return len(key_frequencies(spectrum_share(freq_energy_1d(basis, M.to(torch.float64)))))


def _markdown(table: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = ["# FSD lead over grokking (fsd profile)", "",
             f"Produced by `python scripts/fsd_lead.py analyse --root {args.root}` from runs made by "
             "`python scripts/fsd_lead.py run`. Paper: " + PAPER + ".", "",
             "t_grok: first evaluation with val_acc >= 0.95. t_fsd: offline FSD ceiling (docs/metrics.md). "
             "t_excluded: first sustained rise of the excluded loss after memorisation. lead = t_grok - t_fsd.", ""]
    if args.in_progress:
        lines += ["Not finished yet, so left out below (`python scripts/fsd_lead.py run` resumes them): "
                  + ", ".join(args.in_progress) + ".", ""]
    for name, rows in table.items():
        leads = [r["lead"] for r in rows if r["lead"] is not None]
        k, n, p = sign_test(leads)
        lines += [f"## {name}", "",
                  "| run | p | seed | wd | status | t_grok | t_fsd | t_excluded | lead | FSD before excluded | n_key |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append("| " + " | ".join(str(r[c]) if r[c] is not None else "-" for c in
                         ("run", "p", "seed", "wd", "status", "t_grok", "t_fsd", "t_excluded", "lead",
                          "fsd_before_excluded", "n_key")) + " |")
        mean = f"{np.mean(leads):.0f}" if leads else "-"
        within = sum(500 <= x <= 3000 for x in leads)
        lines += ["", f"mean lead {mean} over {len(leads)} runs with both times; positive {k}/{n}; "
                  f"two-sided sign test p = {p:.3g}; inside 500-3000: {within}/{len(leads)}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run")
    r.add_argument("--primes", default="53,71,97,113,131")
    r.add_argument("--seeds", default="0")
    r.add_argument("--root", default="runs/fsd_lead")
    r.add_argument("--after-grok", type=int, default=2000, help="steps after t_grok (FSD_post needs 2000)")
    r.add_argument("--max-steps", type=int, default=30000)
    r.add_argument("--wd", default="", help="per-prime weight decay, e.g. '53:5' (run directory p53-s0-wd5)")
    r.set_defaults(func=run)
    a = sub.add_parser("analyse")
    a.add_argument("--root", default="runs/fsd_lead")
    a.add_argument("--out", default="docs/results/fsd_lead.md")
    a.set_defaults(func=analyse)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
