"""What the compare view costs: (a) one full redraw (table, 3 overlay plots, screen update) on 20 synthetic runs,
headless at 120x40; (b) a real training run's steps/s with and without the compare view open in another process
(a 120x40 pseudo-terminal, watching the 20 runs and the training run, all shown), rounds interleaved. Usage:

    OMP_NUM_THREADS=1 python benchmarks/bench_compare.py [--rows 3000] [--rounds 9] [--steps 600] [--train-rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import math
import os
import pty
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from grokmon.rundir.records import dumps
from grokmon.tui.compare import CompareApp
from grokmon.tui.overlay_plot import OverlayPlot
from grokmon.tui.run_set import RunSet


def synthetic_row(step: int, grok_at: int, probe: bool) -> dict[str, object]:
    """A metrics.jsonl row with every key a probed run writes: the size of a real row matters to the reader."""
    val_acc = 1.0 / (1.0 + math.exp(min(50.0, -(step - grok_at) / (grok_at / 20))))
    train_acc = min(1.0, step / (grok_at / 4))
    row: dict[str, object] = {
        "step": step, "wall_s": step / 50, "train_loss": 4.0 * math.exp(-step / 400) + 1e-5, "train_acc": train_acc,
        "val_loss": 4.0 * (1 - val_acc) + 0.02 + 0.3 * math.sin(step / 97) ** 2, "val_acc": val_acc,
        "lr": 1e-3, "weight_decay": 1.0,
    }
    fsd = min(1.0, step / grok_at) if probe else None
    row.update({
        "fsd": fsd, "fsd_p": (0.001 if step > grok_at / 3 else 0.5) if probe else None, "fsd_z": 3.0 if probe else None,
        "fsd_sync": (step > grok_at / 3) if probe else None,
        "top_freqs": [[14, 0.31], [35, 0.22], [41, 0.1], [52, 0.05], [3, 0.02]] if probe else None,
        "wl_top_freqs": [[14, 0.4], [41, 0.2], [35, 0.1], [52, 0.05], [7, 0.01]] if probe else None,
        "key_freqs": [14, 35, 41] if probe else None, "restricted_loss": 1.2 if probe else None,
        "excluded_loss": 2.0 if probe else None, "gini_embed": 0.4 if probe else None,
        "gini_wl": 0.5 if probe else None, "weight_norm": 900.0 if probe else None,
        "phase": "memorisation" if step < grok_at / 4 else "circuit formation" if step < grok_at else "generalised",
    })
    return row


def build_runs(root: Path, n_runs: int, n_rows: int, eval_every: int = 10) -> None:
    """n_runs finished run directories in the real format (config.json, metrics.jsonl, events.jsonl,
    summary.json, a released owner.json), like a sweep over task.p and seeds."""
    now = time.time()
    for i in range(n_runs):
        run = root / f"p{[53, 59, 61, 67, 71][i % 5]}-s{i // 5}"
        run.mkdir(parents=True)
        config = {"profile": "quick", "description": "", "task": {"op": "add", "p": [53, 59, 61, 67, 71][i % 5],
                  "seed": i // 5}, "model": {"seed": i // 5}, "optim": {"lr": 1e-3, "weight_decay": 1.0},
                  "train": {"max_steps": n_rows * eval_every, "eval_every": eval_every, "seed": i // 5},
                  "metrics": {"metrics_every": 5, "alpha": 0.05}, "run": {"wd_factor": 2.0}}
        (run / "config.json").write_text(json.dumps(config))
        grok_at = int(n_rows * eval_every * (0.4 + 0.4 * i / n_runs))
        with (run / "metrics.jsonl").open("w") as f:
            for k in range(n_rows):
                f.write(dumps(synthetic_row(k * eval_every, grok_at, probe=k % 5 == 0)) + "\n")
        last = (n_rows - 1) * eval_every
        events = [{"step": 0, "wall_s": 0.0, "time": now, "type": "start", "device": "cpu"},
                  {"step": last, "wall_s": last / 50, "time": now, "type": "finish", "status": "completed",
                   "reason": "max_steps"}]
        (run / "events.jsonl").write_text("".join(dumps(e) + "\n" for e in events))
        (run / "summary.json").write_text(json.dumps({"status": "completed", "steps": last, "wall_s": last / 50,
                                                      "t_grok": None, "t_fsd": None, "lead": None}))
        (run / "owner.json").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now,
                                                    "heartbeat": now, "released": now}))


async def redraw_times(root: Path, rounds: int) -> dict[str, float | tuple[float, float]]:
    """Median ms of one full redraw: every plot drawn again from the data, the table synced, the screen updated."""
    app = CompareApp(RunSet([root]))
    out: dict[str, float | tuple[float, float]] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        t0 = time.perf_counter()
        while app.runs.backlog or not app.runs.tracks or any(t.status == "waiting" for t in app.runs.tracks):
            await pilot.pause(0.05)
        out["load every run's files, s"] = time.perf_counter() - t0
        # Wall time on a busy machine includes waiting for a core; CPU time (this process) is the work itself.
        idle, idle_cpu = [], []
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            await pilot.pause()
            idle.append((time.perf_counter() - t0) * 1000)
            idle_cpu.append((time.process_time() - c0) * 1000)
        out["Pilot pause with nothing to draw, ms (wall / CPU)"] = (statistics.median(idle),
                                                                     statistics.median(idle_cpu))
        for label in ("8 of 20 shown", "20 shown"):
            if label == "20 shown":
                await pilot.press("a")
            ours, frames, ours_cpu, frames_cpu = [], [], [], []
            for _ in range(rounds):
                await pilot.pause()
                for plot in app.query(OverlayPlot):
                    plot.invalidate()
                t0, c0 = time.perf_counter(), time.process_time()
                app.redraw(force=True)
                t1, c1 = time.perf_counter(), time.process_time()
                await pilot.pause()  # the compositor paints the changed widgets
                t2, c2 = time.perf_counter(), time.process_time()
                ours.append((t1 - t0) * 1000)
                frames.append((t2 - t0) * 1000)
                ours_cpu.append((c1 - c0) * 1000)
                frames_cpu.append((c2 - c0) * 1000)
            out[f"redraw (table, plots, key line), {label}, ms (wall / CPU)"] = (statistics.median(ours),
                                                                                 statistics.median(ours_cpu))
            out[f"full frame (redraw + screen update), {label}, ms (wall / CPU)"] = (statistics.median(frames),
                                                                                     statistics.median(frames_cpu))
        polls = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for track in app.runs.tracks:  # what a poll does once a second per run: summary and owner read
                track.refresh_status()
            app.runs.poll(budget_s=1.0)
            polls.append((time.perf_counter() - t0) * 1000)
        out["poll of every run with nothing new, ms"] = statistics.median(polls)
    return out


def rate(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    first, last = rows[1], rows[-1]  # skip step 0: the first evaluation includes warm-up
    return (last["step"] - first["step"]) / (last["wall_s"] - first["wall_s"])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_compare(paths: list[Path], size: tuple[int, int] = (40, 120)) -> tuple[int, int]:
    """The compare view in a child process on a pseudo-terminal, as a user would have it open."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = os.environ.get("TERM", "xterm-256color")
        code = ("import sys; from pathlib import Path; from grokmon.tui.compare import run_compare; "
                f"sys.exit(run_compare([Path(p) for p in {[str(p) for p in paths]!r}]))")
        os.execvp(sys.executable, [sys.executable, "-c", code])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return pid, fd


def drain(fd: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if select.select([fd], [], [], min(left, 0.2))[0]:
            try:
                os.read(fd, 65536)
            except OSError:
                return


def settle(pid: int, fd: int, limit_s: float = 60.0) -> None:
    """Wait until the view has loaded the runs: under 10 % of a core over a second."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        before = cpu_seconds(pid)
        drain(fd, 1.0)
        if cpu_seconds(pid) - before < 0.1:
            return


def train(out: Path, steps: int, fd: int | None) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "grokmon", "run", "quick", "--headless", "--steps", str(steps),
                             "--set", "train.stop_after_grok=-1", "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    while proc.poll() is None:
        if fd is not None:
            drain(fd, 0.2)  # read the view's screen output like a terminal would
        else:
            time.sleep(0.2)
    if proc.returncode != 0:
        raise RuntimeError(f"training failed ({proc.returncode})")
    return rate(out)


def close_compare(pid: int, fd: int) -> None:
    os.write(fd, b"q")
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            break
        drain(fd, 0.1)
    else:  # it did not quit: do not leave it running
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rows", type=int, default=3000, help="metrics rows per synthetic run")
    ap.add_argument("--rounds", type=int, default=9, help="redraws timed per variant")
    ap.add_argument("--steps", type=int, default=600, help="training steps per run in (b)")
    ap.add_argument("--train-rounds", type=int, default=3, help="(b) rounds; 0 skips (b)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        t0 = time.perf_counter()
        build_runs(root, args.runs, args.rows)
        size_mb = sum(f.stat().st_size for f in root.rglob("*")) / 2**20
        print(f"(a) {args.runs} synthetic runs x {args.rows} rows ({size_mb:.0f} MB) written in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        for key, value in asyncio.run(redraw_times(root, args.rounds)).items():
            shown = " / ".join(f"{v:.1f}" for v in value) if isinstance(value, tuple) else f"{value:.1f}"
            print(f"    {key}: {shown}", flush=True)
        ratios, with_rates, without_rates = [], [], []
        for r in range(args.train_rounds):
            alone = train(Path(tmp) / f"alone{r}" / "run", args.steps, None)
            folder = Path(tmp) / f"watched{r}"
            folder.mkdir()
            pid, fd = open_compare([root, folder])
            try:
                settle(pid, fd)
                os.write(fd, b"a")  # show every run, the training one included: the most drawing per redraw
                cpu0, t0 = cpu_seconds(pid), time.monotonic()
                watched = train(folder / "run", args.steps, fd)
                view_cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            finally:
                close_compare(pid, fd)
            ratios.append(watched / alone)
            with_rates.append(watched)
            without_rates.append(alone)
            print(f"(b) round {r + 1}: alone {alone:.2f} steps/s, compare view open {watched:.2f} steps/s, "
                  f"ratio {watched / alone:.3f}; the view used {100 * view_cpu:.1f} % of a core", flush=True)
        if ratios:
            median = statistics.median(ratios)
            print(f"(b) median ratio with/without the compare view: {median:.3f} (loss {100 * (1 - median):.1f} %; "
                  f"{statistics.median(with_rates):.2f} vs {statistics.median(without_rates):.2f} steps/s, quick, "
                  f"{args.steps} steps, {args.runs} runs + the training run watched, 120x40 pseudo-terminal)")


if __name__ == "__main__":
    main()
