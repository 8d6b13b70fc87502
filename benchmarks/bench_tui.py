"""Training speed with the live TUI open against headless, same profile, side by side in one run.

Both run in a real pseudo-terminal (120x40), the app rendering as it would over SSH, headless drawing its
progress bar. Rounds alternate the two; steps/s comes from each run's own metrics.jsonl (wall_s between
its first and last evaluation), so start-up costs are excluded. Usage:

    python benchmarks/bench_tui.py [--profile quick] [--steps 1500] [--rounds 2]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path


def rate(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    first, last = rows[1], rows[-1]  # skip step 0: the first evaluation includes warm-up
    return (last["step"] - first["step"]) / (last["wall_s"] - first["wall_s"])


def run_on_pty(profile: str, steps: int, out: Path, headless: bool, size: tuple[int, int] = (40, 120)) -> float:
    """Both variants run the same way: a child in its own session on a pseudo-terminal (the kernel's
    autogroup scheduler gives each session its own CPU share, so mixing ways would skew the ratio)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: grokmon on a real terminal (headless draws its progress bar there)
        os.environ["TERM"] = os.environ.get("TERM", "xterm-256color")
        os.execvp(sys.executable, [sys.executable, "-m", "grokmon", "run", profile, "--out", str(out),
                                   "--steps", str(steps), "--set", "train.stop_after_grok=-1"]
                  + (["--headless"] if headless else []))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    summary = out / "summary.json"
    deadline = time.monotonic() + 1800
    quit_sent = False
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                os.read(fd, 65536)  # drain the screen output like a terminal would
            except OSError:
                break
        if summary.exists() and not quit_sent:
            os.write(fd, b"q")  # the run finished; leave the app
            quit_sent = True
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            raise RuntimeError("the app did not finish")
    return rate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    ratios, app_rates, headless_rates = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            h = run_on_pty(args.profile, args.steps, Path(tmp) / f"headless{r}", headless=True)
            a = run_on_pty(args.profile, args.steps, Path(tmp) / f"app{r}", headless=False)
            headless_rates.append(h)
            app_rates.append(a)
            ratios.append(a / h)
            print(f"round {r + 1}: headless {h:.1f} steps/s, app {a:.1f} steps/s, ratio app/headless {a / h:.3f}",
                  flush=True)
    print(f"median ratio app/headless: {statistics.median(ratios):.3f} "
          f"({statistics.median(app_rates):.1f} vs {statistics.median(headless_rates):.1f} steps/s, "
          f"profile {args.profile}, {args.steps} steps, 120x40 pseudo-terminal)")


if __name__ == "__main__":
    main()
