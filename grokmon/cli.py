"""The `grokmon` command: argparse verbs that wire config, engine and sinks together.

User mistakes (GrokmonError) become one line on stderr and exit status 2; bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from grokmon import __version__
from grokmon.config import Config, load_config, profile_description, shipped_profiles
from grokmon.errors import ConfigError, GrokmonError

EXIT_USAGE = 2


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


class Interrupted(BaseException):
    """A stop signal outside a run (while starting up, before the run's own policy is in place)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame: Any) -> None:
    """Note the signal: a run about to start takes it as its first stop signal (session.EARLY_SIGNALS), a
    command that runs none checks it when it returns. A second one ends grokmon at once. (Raising on the
    first could be swallowed by library code that catches BaseException while it imports.)"""
    from grokmon.session import EARLY_SIGNALS

    EARLY_SIGNALS.append(signum)
    if len(EARLY_SIGNALS) > 1:
        raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    from grokmon.session import EARLY_SIGNALS, SIGNAL_EXIT

    # Until a run installs its signal policy (and after it restores this), a stop signal ends grokmon with
    # its exit status and one line, wherever it lands (torch's import takes seconds).
    previous = {s: signal.signal(s, _interrupt) for s in SIGNAL_EXIT}
    try:
        args = build_parser().parse_args(argv)
        code = int(args.func(args))
        if EARLY_SIGNALS:
            raise Interrupted(EARLY_SIGNALS[0])
        return code
    except GrokmonError as e:
        print(f"grokmon: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as e:
        print(f"grokmon: interrupted ({signal.Signals(e.signum).name}) before training started or after it "
              "ended", file=sys.stderr)
        return SIGNAL_EXIT[signal.Signals(e.signum)]
    except BrokenPipeError:  # `grokmon report ... | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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

    from grokmon.metrics.runs import run_events
    from grokmon.rundir.layout import is_run_dir
    from grokmon.rundir.lock import run_status
    from grokmon.rundir.readers import read_config, read_rows, read_summary
    from grokmon.rundir.records import dumps

    run_dir: Path = args.run_dir
    if not is_run_dir(run_dir) and ((run_dir / "fork.json").is_file() or (run_dir / "sweep.json").is_file()):
        return _report_experiment(run_dir, as_json=args.json, plot=not args.no_plot)
    if not is_run_dir(run_dir):
        raise ConfigError("not a grokmon run directory (no config.json), fork directory (fork.json) or sweep "
                          "directory (sweep.json)", source=str(run_dir))
    cfg = read_config(run_dir)
    rows = read_rows(run_dir)
    events = run_events(rows, cfg.metrics.alpha)
    summary = read_summary(run_dir)
    status = run_status(run_dir, summary)
    last = rows[-1] if rows else {}
    if args.json:
        print(dumps({"run_dir": str(run_dir), "status": status, "steps": last.get("step"), "final": last,
                     **events}))
        return 0
    print(f"{run_dir}: {cfg.task.op} mod {cfg.task.p}, {cfg.model.n_layers} layer(s), "
          f"status {status}, {len(rows)} evaluations to step {last.get('step', '-')}")
    for key, label in REPORT_ROWS:
        value = events.get(key)
        print(f"  {label:<38} {value if value is not None else '-':>8}")
    if rows and not args.no_plot:
        from grokmon.plots import run_plot

        width = min(shutil.get_terminal_size((100, 24)).columns, 120)
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(run_plot(rows, {"t_fsd": events["t_fsd"], "t_grok": events["t_grok"]}, width=width, color=color))
    return 0


def _report_experiment(path: Path, *, as_json: bool, plot: bool) -> int:
    """`grokmon report` on a fork or sweep directory: its table (and the fork's plot), or its JSON."""
    from grokmon.rundir.readers import read_json

    kind = "fork" if (path / "fork.json").is_file() else "sweep"
    data = read_json(path / f"{kind}.json")
    if data is None:
        raise ConfigError("not a readable JSON object", source=str(path / f"{kind}.json"))
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    try:
        if kind == "sweep":
            from grokmon.experiments.sweep import sweep_markdown

            text = sweep_markdown(data)
        else:
            text = _fork_text(data, plot=plot)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise ConfigError(f"not a {kind}.json this grokmon can read ({type(e).__name__}: {str(e)[:80]})",
                          source=str(path / f"{kind}.json")) from None
    print(text, end="")
    return 0


def _print_fork(report: dict[str, Any], *, plot: bool) -> None:
    print(_fork_text(report, plot=plot), end="")


def _fork_text(report: dict[str, Any], *, plot: bool) -> str:
    """A fork's table and fit, then its plot (coloured on a terminal without NO_COLOR)."""
    import os
    import shutil

    from grokmon.experiments.fork import fit_lines, fork_table

    parts = [fork_table(report), fit_lines(report)]
    if plot:
        from grokmon.plots import fork_plot

        width = min(shutil.get_terminal_size((100, 24)).columns, 100)
        parts.append(fork_plot(report, width=width, height=18,
                               color=sys.stdout.isatty() and "NO_COLOR" not in os.environ))
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# run


def cmd_run(args: argparse.Namespace) -> int:
    from grokmon.session import RunSession

    if args.steps is not None and args.steps < 0:
        raise ConfigError(f"expected an integer >= 0, got {args.steps}", source="--steps")
    if args.resume is not None:
        if args.profile is not None:
            raise ConfigError("give either a PROFILE or --resume RUN_DIR, not both", source="--resume")
        if args.out is not None:
            raise ConfigError("a resumed run writes to its own directory; drop --out", source="--out")
        session = RunSession.resume(args.resume, args.overrides, args.steps)
    else:
        cfg = load_config(args.profile or "default", args.overrides)
        if args.steps is not None:
            cfg = cfg.replace("train", max_steps=args.steps)
        session = RunSession.new(cfg, args.out if args.out is not None else _default_run_dir(cfg))
    for note in session.notes:
        print(f"grokmon: {note}", file=sys.stderr)
    if not args.headless and _has_terminal():
        return _train_in_app(session)
    from grokmon.sinks.console import ConsoleProgress

    console = ConsoleProgress(session.cfg.train.max_steps)
    _open_or_clean(session, [console])  # a signal noted until now stops the run at its first step boundary
    try:
        result = session.run()
    finally:
        console.close()
    return _report_end(result)


def _default_run_dir(cfg: Config) -> Path:
    """runs/<name>-<time>, made atomically: runs started in the same second get -2, -3, ... (mkdir is the
    arbiter, so two processes never pick one name)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.run.runs_dir) / f"{cfg.run.name or cfg.profile}-{stamp}"
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the runs folder: {e.strerror or e}", source=str(base.parent)) from None
    for n in range(1, 10_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise ConfigError(f"cannot create the run directory: {e.strerror or e}", source=str(path)) from None
    raise ConfigError("too many runs started in this second", source=str(base))


def _open_or_clean(session: Any, sinks: list[Any]) -> None:
    """Open the session; if that fails before the run wrote anything, leave no empty run directory behind."""
    try:
        session.open(sinks)
    except BaseException:
        from grokmon.rundir import layout

        leftovers = [p for p in session.run_dir.iterdir() if p.name not in (layout.LOCK, layout.OWNER)] \
            if session.run_dir.is_dir() else None
        if leftovers == [] and session.state is None:
            for name in (layout.LOCK, layout.OWNER):
                (session.run_dir / name).unlink(missing_ok=True)
            session.run_dir.rmdir()
        raise


def _train_in_app(session: Any) -> int:
    """The live TUI: the session runs in a thread worker of the app; the main thread applies the signal
    policy (first signal: stop at a step boundary and leave the app; second: stop at once)."""
    from grokmon.session import SessionResult, SignalPolicy
    from grokmon.tui.app import GrokmonApp
    from grokmon.tui.source import LiveSource

    source = LiveSource(session)  # opens the session: config errors surface before the app starts
    app = GrokmonApp(source)

    import asyncio

    def leave_app() -> None:
        try:
            asyncio.get_running_loop().call_soon_threadsafe(app.exit)
        except RuntimeError:
            pass  # the app is not running (yet, or any more)

    def first(name: str) -> None:
        source.stop(source=f"signal:{name}")
        leave_app()

    def second(name: str) -> None:
        session.engine.abort()
        leave_app()

    policy = SignalPolicy(first, second)
    with policy.installed():
        app.run()  # returns once the trainer thread has ended (the app stops it when it unmounts)
    result: SessionResult | None = source.result
    if result is None:
        print(f"grokmon: the app exited before training started; run directory {session.run_dir}", file=sys.stderr)
        return 1
    if policy.received:
        result.signal = policy.received[0]
        if policy.received[0] == signal.SIGHUP:
            return result.exit_code  # the terminal is gone: nobody to print the closing lines to
    return _report_end(result)


def _report_end(result: Any) -> int:
    """The closing lines on stderr, the run directory on stdout, and the exit status."""
    grok = f"t_grok {result.t_grok}" if result.t_grok is not None else "no grokking (val_acc < 0.95)"
    print(f"grokmon: {result.status} at step {result.step}, {grok}; run directory {result.run_dir}", file=sys.stderr)
    print(result.run_dir)
    if result.status == "failed" and result.error.startswith("RunDirWriteError: "):
        print(f"grokmon: error: {result.error.split(': ', 1)[1]}; the run directory keeps its last checkpoint: "
              f"free space, then `grokmon run --resume {result.run_dir}`", file=sys.stderr)
    elif result.status == "failed":
        print(f"grokmon: error: training failed: {result.error} (traceback in {result.run_dir / 'error.log'})",
              file=sys.stderr)
    elif result.status == "diverged":
        print("grokmon: error: the loss became non-finite; the last good checkpoint is kept", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
