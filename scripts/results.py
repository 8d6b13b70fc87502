"""The results pages in docs/results/, in two stages: `collect` reads run directories (or collected fork data)
and writes one JSON file per experiment with every number a page shows; `render` writes the pages from
those JSON files alone. Usage:

    python scripts/results.py collect lead      --from SWEEP_DIR ... [--out docs/results/fsd_lead.json]
    python scripts/results.py collect precision --from SWEEP_DIR ... [--out docs/results/precision.json]
    python scripts/results.py collect forks     [--from docs/results/wd_fork.json | FORK_DIR ...]
    python scripts/results.py render [lead|forks|precision ...] [--all] [--dir docs/results]

collect takes --commit (the commit the runs were trained at) and --conditions (threads, load) to record.
The definitions are docs/metrics.md's; the analysis is grokmon's (grokmon.metrics, grokmon.offline,
grokmon.experiments.fork); this script only gathers, counts and writes. This file is the command line; each
experiment's collect and render live in results_pages/ beside it (lead, forks, precision; common for what they share).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from grokmon.rundir.readers import read_json

# `python scripts/results.py` puts this file's folder first on sys.path: that is how results_pages is found,
# from any working directory.
from results_pages.common import RESULTS, write_json
from results_pages.forks_collect import collect_forks
from results_pages.forks_render import render_forks
from results_pages.lead_collect import collect_lead
from results_pages.lead_render import render_lead
from results_pages.precision import collect_precision, render_precision

PAGES = {"lead": "fsd_lead", "forks": "wd_fork", "precision": "precision"}  # experiment -> page name
OUTPUTS = {"lead": "fsd_lead.json", "forks": "wd_fork_fits.json", "precision": "precision.json"}
RENDERERS = {"lead": render_lead, "forks": render_forks, "precision": render_precision}
COLLECTORS = {"lead": collect_lead, "forks": collect_forks, "precision": collect_precision}


def render(names: Sequence[str], directory: Path, require_all: bool) -> list[Path]:
    """Write the page of each experiment whose JSON (a file in `directory` with that "experiment") exists."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.json")):
        data = read_json(path)
        kind = data.get("experiment") if data else None
        if kind in RENDERERS:
            if kind in found:
                raise SystemExit(f"two JSON files for {kind}: {found[kind].name} and {path.name}")
            found[kind] = path
    wanted = list(names) or list(RENDERERS)
    lacking = [k for k in wanted if k not in found]
    if lacking and (require_all or names):
        raise SystemExit(f"no JSON in {directory} for: {', '.join(lacking)} (run `collect` first)")
    written = []
    for kind in (k for k in wanted if k in found):
        page = directory / f"{PAGES[kind]}.md"
        page.write_text(RENDERERS[kind](json.loads(found[kind].read_text()), found[kind].name))
        print(f"wrote {page}")
        written.append(page)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    c = sub.add_parser("collect", help="read runs, write docs/results/<experiment>.json")
    c.add_argument("experiment", choices=list(COLLECTORS))
    c.add_argument("--from", dest="from_", nargs="+", default=None,
                   help="lead / precision: sweep directories; forks: wd_fork.json or fork directories")
    c.add_argument("--out", type=Path, help="default docs/results/{fsd_lead,wd_fork_fits,precision}.json")
    c.add_argument("--commit", help="the commit the runs were trained at")
    c.add_argument("--conditions", default="", help="threads, machine load: recorded and shown on the page")
    c.add_argument("--earlier", type=Path, help="lead: an earlier lead table's JSON, shown apart and not pooled")
    r = sub.add_parser("render", help="write the pages from docs/results/*.json")
    r.add_argument("pages", nargs="*", metavar="{lead,forks,precision}", help="default: every page with JSON")
    r.add_argument("--all", action="store_true", help="fail unless every page's JSON is there")
    r.add_argument("--dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.verb == "render":
        unknown = [p for p in args.pages if p not in RENDERERS]
        if unknown:
            ap.error(f"unknown page {unknown[0]!r}: expected one of {', '.join(RENDERERS)}")
        render(args.pages, args.dir, args.all)
        return
    if args.experiment != "forks" and not args.from_:
        ap.error(f"collect {args.experiment} needs --from SWEEP_DIR ...")
    write_json(args.out or RESULTS / OUTPUTS[args.experiment], COLLECTORS[args.experiment](args))


if __name__ == "__main__":
    main()
