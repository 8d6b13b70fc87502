"""House rules that code review forgets: module boundaries and the README's commands."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE = ["grokmon.config", "grokmon.data", "grokmon.model", "grokmon.fourier", "grokmon.metrics",
        "grokmon.events", "grokmon.engine", "grokmon.sinks.rundir", "grokmon.sinks.console", "grokmon.cli"]


def test_nothing_outside_tui_loads_textual_or_plotext() -> None:
    code = (f"import sys, importlib\nfor m in {PURE!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'plotext', 'textual_plotext'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_no_source_file_outside_tui_imports_ui_packages() -> None:
    offenders = []
    for path in (ROOT / "grokmon").rglob("*.py"):
        if "tui" in path.relative_to(ROOT / "grokmon").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("textual", "plotext", "textual_plotext")]
    assert offenders == []


def test_pure_modules_do_not_import_the_engine_or_sinks() -> None:
    for name in ("config", "data", "model", "fourier", "events"):
        tree = ast.parse((ROOT / "grokmon" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("grokmon.engine", "grokmon.sinks", "grokmon.cli", "grokmon.tui")), name


def test_readme_quickstart_is_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\s+```(?:sh|bash)?\n(.*?)```", readme, re.S)
    assert block, "README.md needs a Quickstart code block"
    commands = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert "grokmon run" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci
