"""The `grokmon` command: argparse verbs that wire config, engine and sinks together.

User mistakes (GrokmonError) become one line on stderr and exit status 2; bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from grokmon import __version__
from grokmon.config import (
    Config, apply_overrides, config_from_json, load_config, profile_description, shipped_profiles,
)
from grokmon.errors import ConfigError, GrokmonError

EXIT_USAGE = 2
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
APP_SIGNALS = {signal.SIGHUP: 129, signal.SIGTERM: 143}  # a dropped SSH link, a kill: stop cleanly
RESUMABLE_SECTIONS = ("train", "metrics", "schedule", "run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grokmon", description="Train grokking transformers on modular arithmetic and watch them generalise.")
    parser.add_argument("--version", action="version", version=f"grokmon {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    run = sub.add_parser("run", help="train a profile (headless when stdout is not a terminal)",
                         description="Train a profile. PROFILE is a shipped profile's name or a .toml path.")
    run.add_argument("profile", nargs="?", default=None, metavar="PROFILE",
                     help="profile name or path (default: default)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a profile value; repeatable (e.g. --set optim.weight_decay=2)")
    run.add_argument("--headless", action="store_true", help="no UI: progress on stderr, files in the run directory")
    run.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: runs/<profile>-<timestamp>/)")
    run.add_argument("--steps", type=int, metavar="N", help="total optimiser steps (train.max_steps)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="the events table and a plot of a run directory",
                            description="Summarise a run: the grokking crossings, FSD ceilings and lead.")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.add_argument("--json", action="store_true", help="print the events as one JSON object")
    report.add_argument("--no-plot", action="store_true", help="the table only")
    report.set_defaults(func=cmd_report)

    watch = sub.add_parser("watch", help="the live panels for a run written by another process",
                           description="Follow RUN_DIR live (a headless run under nohup, tmux or a batch "
                                       "job) and steer it: keys append commands to RUN_DIR/control.jsonl.")
    watch.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    watch.set_defaults(func=cmd_watch)

    fork = sub.add_parser("fork", help="branch a run at its FSD ceiling into weight-decay branches; fit dt = C/lambda",
                          description="Fork RUN_DIR at its FSD ceiling (or a step) into headless branches that "
                                      "differ only in weight decay; run each to grokking and fit dt = C / lambda. "
                                      "Writes RUN_DIR/forks/: a run directory per branch, fork.json and fork.md. "
                                      "Run it again to finish branches that were interrupted.")
    fork.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                      help="a run directory with checkpoints (a headless or TUI run, finished or not)")
    fork.add_argument("--at", default="fsd-ceiling", metavar="fsd-ceiling|STEP",
                      help="fork step: the run's FSD ceiling (offline t_fsd; the online detector's step if the "
                           "offline one is not before t_grok) or a step number (default: fsd-ceiling)")
    fork.add_argument("--wd", default="0.5,1,1.5,2,3,5", metavar="L1,L2,...",
                      help="branch weight decays (default: 0.5,1,1.5,2,3,5)")
    fork.add_argument("--relative", action="store_true",
                      help="--wd values are multiples of the weight decay in force at the fork (lambda0)")
    fork.add_argument("--jobs", type=int, default=1, metavar="N",
                      help="branches run at once, one process each (default 1)")
    fork.add_argument("--after-grok", type=int, default=500, metavar="STEPS",
                      help="keep a branch training this long after it groks, to judge its stability (default 500)")
    fork.add_argument("--eval-every", type=int, metavar="STEPS",
                      help="branch evaluation interval; dt is measured to this resolution (default: the run's)")
    fork.add_argument("--max-steps", type=int, metavar="N", help="step limit per branch (default: the run's)")
    fork.add_argument("--out", type=Path, metavar="DIR", help="where the branches go (default: RUN_DIR/forks)")
    fork.set_defaults(func=cmd_fork)

    sweep = sub.add_parser("sweep", help="every combination of --grid values and --seeds, headless, with a summary",
                           description="Run PROFILE for every combination of --grid values and --seeds into one "
                                       "sweep directory and summarise t_grok, t_fsd and the lead (sweep.md, "
                                       "sweep.json). Run it again with the same arguments and --out to finish "
                                       "runs that were interrupted.")
    sweep.add_argument("profile", metavar="PROFILE", help="profile name or path")
    sweep.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2,...",
                       help="values to sweep; repeatable (e.g. --grid task.p=53,71,97)")
    sweep.add_argument("--seeds", default="0", metavar="S1,S2,...",
                       help="seeds; seed s sets task.seed, model.seed and train.seed (default: 0)")
    sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a profile value for every run; repeatable")
    sweep.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="local runs at once, one process each (default 1)")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local processes, or tasks on a Ray cluster (pip install 'grokmon[ray]')")
    sweep.add_argument("--address", metavar="ADDR",
                       help="Ray cluster address (default: RAY_ADDRESS, else a new local Ray instance)")
    sweep.add_argument("--out", type=Path, metavar="DIR",
                       help="sweep directory (default: runs/sweep-<profile>-<time>/)")
    sweep.set_defaults(func=cmd_sweep)

    profiles = sub.add_parser("profiles", help="list the shipped profiles, one line each")
    profiles.set_defaults(func=cmd_profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except GrokmonError as e:
        print(f"grokmon: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `grokmon report ... | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 0


# ---------------------------------------------------------------------------------------------
# profiles


def cmd_profiles(args: argparse.Namespace) -> int:
    shipped = shipped_profiles()
    width = max((len(n) for n in shipped), default=0)
    for name, path in shipped.items():
        print(f"{name:<{width}}  {profile_description(path)}")
    return 0


# ---------------------------------------------------------------------------------------------
# watch


def _has_terminal() -> bool:
    return sys.stdout.isatty() and sys.stdin.isatty()


def cmd_watch(args: argparse.Namespace) -> int:
    if not _has_terminal():
        raise ConfigError("needs a terminal (stdin and stdout); for a text summary use "
                          "`grokmon report RUN_DIR`", source="grokmon watch")
    if args.run_dir.exists() and not args.run_dir.is_dir():
        raise ConfigError("is not a directory", source=str(args.run_dir))
    from grokmon.tui.app import GrokmonApp
    from grokmon.tui.source import WatchSource

    GrokmonApp(WatchSource(args.run_dir)).run()
    return 0


# ---------------------------------------------------------------------------------------------
# fork and sweep


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _check_jobs(n: int) -> None:
    if n < 1:
        raise ConfigError(f"expected an integer >= 1, got {n}", source="--jobs")


def cmd_fork(args: argparse.Namespace) -> int:
    from grokmon.experiments.fork import parse_wd_list, run_fork

    _check_jobs(args.jobs)
    if args.after_grok < 0:
        raise ConfigError(f"expected an integer >= 0, got {args.after_grok}", source="--after-grok")
    if args.eval_every is not None and args.eval_every < 1:
        raise ConfigError(f"expected an integer >= 1, got {args.eval_every}", source="--eval-every")
    report = run_fork(args.run_dir, at=args.at, wds=parse_wd_list(args.wd), relative=args.relative, out=args.out,
                      eval_every=args.eval_every, after_grok=args.after_grok, max_steps=args.max_steps,
                      n_jobs=args.jobs, log=_log)
    out = args.out if args.out is not None else args.run_dir / "forks"
    _print_fork(report, plot=sys.stdout.isatty())  # the plot is in fork.md; on a pipe the table is enough
    _log(f"grokmon: fork written to {out / 'fork.json'} and {out / 'fork.md'}")
    return _unfinished_exit([(b["name"], b["status"]) for b in report["branches"]],
                            "run the same command again to continue them")


def cmd_sweep(args: argparse.Namespace) -> int:
    from grokmon.experiments.sweep import parse_seeds, run_sweep

    _check_jobs(args.jobs)
    if not args.grid:
        raise ConfigError("expected at least one --grid SECTION.KEY=V1,V2,...", source="grokmon sweep")
    if args.address and args.backend != "ray":
        raise ConfigError("only applies to --backend ray", source="--address")
    report = run_sweep(args.profile, args.grid, parse_seeds(args.seeds), out=args.out, overrides=args.overrides,
                       n_jobs=args.jobs, backend=args.backend, address=args.address, log=_log)
    print((Path(report["sweep_dir"]) / "sweep.md").read_text(), end="")
    return _unfinished_exit([(r["name"], r["status"]) for r in report["runs"]],
                            f"run the same command with --out {report['sweep_dir']} to continue them")


def _unfinished_exit(statuses: list[tuple[str, str]], hint: str) -> int:
    """0 when every run completed; 130 when one was interrupted (Ctrl-C, SIGTERM), else 1."""
    unfinished = [name for name, status in statuses if status != "completed"]
    if not unfinished:
        return 0
    _log(f"grokmon: not finished: {', '.join(unfinished)}; {hint}")
    return 130 if any(status == "interrupted" for _, status in statuses) else 1


# ---------------------------------------------------------------------------------------------
# report

REPORT_ROWS = (
    ("t_grok_50", "val_acc first >= 0.50"),
    ("t_grok", "val_acc first >= 0.95 (t_grok)"),
    ("t_grok_99", "val_acc first >= 0.99"),
    ("t_fsd", "FSD ceiling, offline rule (t_fsd)"),
    ("t_fsd_online", "FSD ceiling, online detector"),
    ("t_excluded", "excluded loss starts rising"),
    ("lead", "lead = t_grok - t_fsd"),
)


def cmd_report(args: argparse.Namespace) -> int:
    import os
    import shutil

    from grokmon.sinks.rundir import dumps, is_run_dir, read_jsonl, run_events

    run_dir: Path = args.run_dir
    if not is_run_dir(run_dir) and ((run_dir / "fork.json").is_file() or (run_dir / "sweep.json").is_file()):
        return _report_experiment(run_dir, as_json=args.json, plot=not args.no_plot)
    if not is_run_dir(run_dir):
        raise ConfigError("not a grokmon run directory (no config.json), fork directory (fork.json) or sweep "
                          "directory (sweep.json)", source=str(run_dir))
    config = json.loads((run_dir / "config.json").read_text())
    rows = read_jsonl(run_dir / "metrics.jsonl")
    events = run_events(rows, float(config.get("metrics", {}).get("alpha", 0.05)))
    status = "running"
    if (run_dir / "summary.json").exists():
        status = json.loads((run_dir / "summary.json").read_text()).get("status", status)
    last = rows[-1] if rows else {}
    if args.json:
        print(dumps({"run_dir": str(run_dir), "status": status, "steps": last.get("step"), "final": last,
                     **events}))
        return 0
    task, model = config.get("task", {}), config.get("model", {})
    print(f"{run_dir}: {task.get('op')} mod {task.get('p')}, {model.get('n_layers')} layer(s), "
          f"status {status}, {len(rows)} evaluations to step {last.get('step', '-')}")
    for key, label in REPORT_ROWS:
        value = events.get(key)
        print(f"  {label:<38} {value if value is not None else '-':>8}")
    if rows and not args.no_plot:
        from grokmon.tui.report_plot import run_plot

        width = min(shutil.get_terminal_size((100, 24)).columns, 120)
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(run_plot(rows, {"t_fsd": events["t_fsd"], "t_grok": events["t_grok"]}, width=width, color=color))
    return 0


def _report_experiment(path: Path, *, as_json: bool, plot: bool) -> int:
    """`grokmon report` on a fork or sweep directory: its table (and the fork's plot), or its JSON."""
    from grokmon.experiments.jobs import read_json

    kind = "fork" if (path / "fork.json").is_file() else "sweep"
    data = read_json(path / f"{kind}.json")
    if data is None:
        raise ConfigError("not a readable JSON object", source=str(path / f"{kind}.json"))
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    if kind == "sweep":
        from grokmon.experiments.sweep import sweep_markdown

        print(sweep_markdown(data), end="")
        return 0
    _print_fork(data, plot=plot)
    return 0


def _print_fork(report: dict[str, Any], *, plot: bool) -> None:
    """A fork's table and fit on stdout, then its plot (coloured on a terminal without NO_COLOR)."""
    import os
    import shutil

    from grokmon.experiments.fork import fit_lines, fork_table

    print(fork_table(report))
    print(fit_lines(report))
    if plot:
        from grokmon.tui.fork_plot import fork_plot

        width = min(shutil.get_terminal_size((100, 24)).columns, 100)
        print(fork_plot(report, width=width, height=18, color=sys.stdout.isatty() and "NO_COLOR" not in os.environ))


# ---------------------------------------------------------------------------------------------
# run


def cmd_run(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps < 0:
        raise ConfigError(f"expected an integer >= 0, got {args.steps}", source="--steps")
    if args.resume is not None:
        if args.profile is not None:
            raise ConfigError("give either a PROFILE or --resume RUN_DIR, not both", source="--resume")
        if args.out is not None:
            raise ConfigError("a resumed run writes to its own directory; drop --out", source="--out")
        return _resume(args)
    cfg = load_config(args.profile or "default", args.overrides)
    if args.steps is not None:
        cfg = cfg.replace("train", max_steps=args.steps)
    run_dir = args.out if args.out is not None else _default_run_dir(cfg)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError("exists and is not an empty directory; choose another --out, "
                          "or continue it with --resume", source=str(run_dir))
    return _train(cfg, run_dir, resume_state=None, headless=args.headless)


def _default_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.run.runs_dir) / f"{cfg.run.name or cfg.profile}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _resume(args: argparse.Namespace) -> int:
    from grokmon.sinks.rundir import checkpoints, is_run_dir, load_checkpoint

    run_dir: Path = args.resume
    if not is_run_dir(run_dir):
        raise ConfigError("not a grokmon run directory (no config.json)", source=str(run_dir))
    cfg = config_from_json(run_dir / "config.json")
    for item in args.overrides:
        section = item.split("=", 1)[0].split(".", 1)[0].strip()
        if section not in RESUMABLE_SECTIONS:
            raise ConfigError(f"a resumed run can only change {', '.join(RESUMABLE_SECTIONS)} values",
                              source="--set", key=item.split("=", 1)[0])
    cfg = apply_overrides(cfg, args.overrides)
    if args.steps is not None:
        cfg = cfg.replace("train", max_steps=args.steps)
    found = checkpoints(run_dir)
    if not found:
        raise ConfigError("has no checkpoint to resume from (checkpoints/step_*.pt)", source=str(run_dir))
    step, path = max(found.items())
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state or "optimizer" not in state:
        raise ConfigError("not a full grokmon training state", source=str(path))
    if step >= cfg.train.max_steps:
        print(f"grokmon: {run_dir} is already at step {step} >= max_steps {cfg.train.max_steps}; "
              "pass --steps N to train further", file=sys.stderr)
    return _train(cfg, run_dir, resume_state=state, headless=args.headless)


def _train(cfg: Config, run_dir: Path, *, resume_state: dict[str, Any] | None, headless: bool) -> int:
    # Heavy imports here so `grokmon profiles` and argument errors stay instant.
    from grokmon.engine import Engine
    from grokmon.events import Command
    from grokmon.sinks.console import ConsoleProgress
    from grokmon.sinks.follow import ControlFile
    from grokmon.sinks.rundir import RunDir

    resume_step = int(resume_state["step"]) if resume_state is not None else None
    commands: queue.Queue[Command] = queue.Queue()
    engine = Engine(cfg, commands=commands, resume_state=resume_state)  # may raise before any file exists
    try:
        run = RunDir(run_dir, resume_step=resume_step)
    except OSError as e:
        raise ConfigError(f"cannot write the run directory: {e.strerror or e}", source=str(run_dir)) from None
    engine.checkpointer = run
    engine.command_sources = [ControlFile(run_dir)]  # `grokmon watch` steers through RUN_DIR/control.jsonl
    if not headless and _has_terminal():
        return _train_in_app(engine, run)
    console = ConsoleProgress(cfg.train.max_steps)
    engine.sinks = [run, console]

    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if received:  # a second signal: stop waiting for the step to finish
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        received.append(signum)
        commands.put(Command("stop", source=f"signal:{signal.Signals(signum).name}"))

    previous = {s: signal.signal(s, on_signal) for s in SIGNAL_EXIT}
    try:
        result = engine.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        console.close()
        run.close()

    code = _report_end(result, run_dir)
    return SIGNAL_EXIT[signal.Signals(received[0])] if result.status == "interrupted" and received else code


def _train_in_app(engine: Any, run: Any) -> int:
    """The live TUI: the engine in a thread worker of the app, the same run directory as headless."""
    from grokmon.tui.app import GrokmonApp
    from grokmon.tui.source import LiveSource

    source = LiveSource(engine, run)
    app = GrokmonApp(source)
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        """The terminal is gone or we were told to go: stop training at the step boundary (checkpoint and
        summary), and leave the app; the interpreter then waits for the trainer thread to finish."""
        received.append(signum)
        source.stop(source=f"signal:{signal.Signals(signum).name}")
        try:
            asyncio.get_running_loop().call_soon_threadsafe(app.exit)
        except RuntimeError:
            pass  # the app is not running (yet, or any more)

    previous = {s: signal.signal(s, on_signal) for s in APP_SIGNALS}
    try:
        app.run()  # returns once the trainer thread has ended (the app stops it when it unmounts)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        run.close()
    if source.result is None:
        print(f"grokmon: the app exited before training started; run directory {run.path}", file=sys.stderr)
        return 1
    if signal.SIGHUP in received:
        return APP_SIGNALS[signal.SIGHUP]  # the terminal is gone: nobody to print the closing lines to
    code = _report_end(source.result, run.path)
    return APP_SIGNALS[signal.Signals(received[0])] if received else code


def _report_end(result: Any, run_dir: Path) -> int:
    """The closing lines on stderr, the run directory on stdout, and the exit status."""
    grok = f"t_grok {result.t_grok}" if result.t_grok is not None else "no grokking (val_acc < 0.95)"
    print(f"grokmon: {result.status} at step {result.step}, {grok}; run directory {run_dir}", file=sys.stderr)
    print(run_dir)
    if result.status == "failed":
        print(f"grokmon: error: training failed: {result.error} (traceback in {run_dir / 'error.log'})",
              file=sys.stderr)
        return 1
    if result.status == "diverged":
        print("grokmon: error: the loss became non-finite; the last good checkpoint is kept", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
