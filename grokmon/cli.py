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
    report.add_argument("--save", type=Path, metavar="FIGURE",
                        help="also draw a publication figure into FIGURE (.png, .svg or .pdf; "
                             "pip install 'grokmon[plot]')")
    report.set_defaults(func=cmd_report)

    watch = sub.add_parser("watch", help="the live panels for a run written by another process, or several runs",
                           description="Follow RUN_DIR live (a headless run under nohup, tmux or a batch "
                                       "job) and steer it: keys append commands to RUN_DIR/control.jsonl. "
                                       "Several run directories, or one folder of runs (a fork, a sweep, "
                                       "runs/), open the compare view.")
    watch.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                       help="a run directory (it may not exist yet), several, or a folder that holds runs")
    watch.set_defaults(func=cmd_watch)

    ls = sub.add_parser("ls", help="the runs under a folder, newest first, one line each",
                        description="List the runs at or under DIR (forks' branches and sweeps' runs "
                                    "included), newest write first: name, profile, task, status, steps, "
                                    "t_grok, lead and the age of the last write. Reads without locking.")
    ls.add_argument("dir", type=Path, nargs="?", default=Path("runs"), metavar="DIR",
                    help="the folder to search (default: runs)")
    ls.add_argument("--json", action="store_true", help="one JSON object per run, one per line")
    ls.set_defaults(func=cmd_ls)

    diff = sub.add_parser("diff", help="the config values that differ between two runs",
                          description="Print the config keys of RUN_A and RUN_B that differ (dotted keys, "
                                      "`a -> b`), then how many are equal.")
    diff.add_argument("run_a", type=Path, metavar="RUN_A")
    diff.add_argument("run_b", type=Path, metavar="RUN_B")
    diff.set_defaults(func=cmd_diff)

    export = sub.add_parser("export", help="a run (or every run of a fork or sweep) as CSV or TensorBoard files",
                            description="Write RUN_DIR's metrics as CSV (metrics.csv, spectra.csv, freqs.csv) "
                                        "or TensorBoard event files (pip install 'grokmon[tensorboard]'). A "
                                        "fork or sweep directory exports each run into its own sub-folder. "
                                        "docs/run-directory.md describes the files.")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("--format", required=True, choices=("csv", "tensorboard"), help="what to write")
    export.add_argument("--out", type=Path, metavar="PATH", help="output folder (default: RUN_DIR/export/)")
    export.set_defaults(func=cmd_export)

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
    from grokmon.runindex import watch_compares

    if not _has_terminal():
        raise ConfigError("needs a terminal (stdin and stdout); for a text summary use "
                          "`grokmon report RUN_DIR` or `grokmon ls`", source="grokmon watch")
    for path in args.paths:
        if path.exists() and not path.is_dir():
            raise ConfigError("is not a directory", source=str(path))
    if watch_compares(args.paths):
        from grokmon.tui.compare import run_compare

        return int(run_compare(list(args.paths)))
    from grokmon.tui.app import GrokmonApp
    from grokmon.tui.source import WatchSource

    GrokmonApp(WatchSource(args.paths[0])).run()
    return 0


# ---------------------------------------------------------------------------------------------
# ls, diff, export


def cmd_ls(args: argparse.Namespace) -> int:
    from grokmon.runindex import list_runs, ls_json, ls_table

    lines = list_runs(args.dir)
    if not lines:
        _log(f"grokmon: no runs under {args.dir}")
        return 0
    print(ls_json(lines) if args.json else ls_table(lines), end="")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from grokmon.runindex import diff_text

    print(diff_text(args.run_a, args.run_b), end="")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from grokmon.export import export

    def done(e: Any) -> None:
        files = ", ".join(e.files) if e.files else "no files"
        print(f"{e.run_dir}: {e.n_rows} evaluations -> {e.out} ({files})", flush=True)

    export(args.run_dir, args.format, args.out, on_done=done)
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
    from grokmon.report import fork_text

    _check_jobs(args.jobs)
    if args.after_grok < 0:
        raise ConfigError(f"expected an integer >= 0, got {args.after_grok}", source="--after-grok")
    if args.eval_every is not None and args.eval_every < 1:
        raise ConfigError(f"expected an integer >= 1, got {args.eval_every}", source="--eval-every")
    report = run_fork(args.run_dir, at=args.at, wds=parse_wd_list(args.wd), relative=args.relative, out=args.out,
                      eval_every=args.eval_every, after_grok=args.after_grok, max_steps=args.max_steps,
                      n_jobs=args.jobs, log=_log)
    out = args.out if args.out is not None else args.run_dir / "forks"
    # The plots are in fork.md; on a pipe the table is enough.
    print(fork_text(report, plot=sys.stdout.isatty(), width=_plot_width(), color=_color(), fork_dir=out), end="")
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

def _plot_width() -> int:
    import shutil

    return min(shutil.get_terminal_size((100, 24)).columns, 120)


def _color() -> bool:
    import os

    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def cmd_report(args: argparse.Namespace) -> int:
    from grokmon.report import experiment_kind, experiment_text, report_plot, report_text, run_report, save_figure
    from grokmon.rundir.layout import is_run_dir
    from grokmon.rundir.records import dumps

    run_dir: Path = args.run_dir
    if args.save is not None:
        from grokmon.figures import check_target

        check_target(args.save)  # a wrong suffix or no matplotlib: one line before any output
    kind = experiment_kind(run_dir)
    if kind is None and not is_run_dir(run_dir):
        raise ConfigError("not a grokmon run directory (no config.json), fork directory (fork.json) or sweep "
                          "directory (sweep.json)", source=str(run_dir))
    if kind is not None and args.json:
        from grokmon.report import read_experiment

        print(json.dumps(read_experiment(run_dir, kind), indent=2))
    elif kind is not None:
        print(experiment_text(run_dir, kind, plot=not args.no_plot, width=_plot_width(), color=_color()), end="")
    else:
        report = run_report(run_dir)
        if args.json:
            keep = ("run_dir", "status", "steps", "final", "t_grok_50", "t_grok", "t_grok_99", "t_fsd",
                    "t_fsd_online", "t_excluded", "t_excluded_online", "excluded_offline", "lead", "missing",
                    "provisional")
            print(dumps({k: report[k] for k in keep}))
        else:
            print(report_text(report), end="")
            if report["rows"] and not args.no_plot:
                print(report_plot(report, width=_plot_width(), color=_color()))
    if args.save is not None:
        _log(f"grokmon: figure written to {save_figure(run_dir, args.save)}")
    return 0


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
