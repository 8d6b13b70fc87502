"""House rules that code review forgets: module boundaries and the README's commands."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "grokmon"
TEXTUAL = ("textual", "textual_plotext")  # textual_plotext is a textual widget: it loads textual
PLOTEXT_ALLOWED = {"grokmon/plots.py"}  # besides grokmon/tui/
TUI_ALLOWED = {"grokmon/cli.py"}  # and only inside a function there

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class ImportSite:
    """One import in a source file: the absolute module it names, where, and whether a function holds it."""

    path: str  # relative to the repository root, e.g. grokmon/cli.py
    line: int
    module: str
    in_function: bool

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.path}:{self.line} imports {self.module} ({where})"


def non_tui_sources() -> list[Path]:
    """Every Python file of the grokmon package outside grokmon/tui/."""
    return sorted(path for path in PACKAGE.rglob("*.py") if "tui" not in path.relative_to(PACKAGE).parts[:-1])


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_sites(path: Path, root: Path = ROOT) -> list[ImportSite]:
    """Every import of a file, top-level or nested: `import a.b`, `from a import b` (as a and a.b, since b
    may be a submodule), relative imports resolved, and importlib.import_module / __import__ of a literal."""
    rel = path.relative_to(root).as_posix()
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    sites: list[ImportSite] = []

    def add(node: ast.AST, module: str, in_function: bool) -> None:
        sites.append(ImportSite(rel, getattr(node, "lineno", 0), module, in_function))

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name, in_function)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            add(node, base, in_function)
            for alias in node.names:
                if alias.name != "*":
                    add(node, f"{base}.{alias.name}", in_function)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                add(node, node.args[0].value, in_function)
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, nested)

    visit(ast.parse(path.read_text(), filename=rel), False)
    return sites


def _lines(sites: list[ImportSite]) -> str:
    """One line per offending import statement (a `from a import b` is recorded as a and as a.b)."""
    seen: dict[tuple[str, int], ImportSite] = {}
    for site in sites:
        seen.setdefault((site.path, site.line), site)
    return "\n".join(str(site) for site in seen.values())


def _top(module: str) -> str:
    return module.split(".")[0]


def _is_tui(module: str) -> bool:
    return module == "grokmon.tui" or module.startswith("grokmon.tui.")


def test_import_scanner_sees_nested_relative_and_dynamic_imports(tmp_path: Path) -> None:
    """The scanner the rules below rely on: nested imports are marked as such, relative imports resolve
    against the file's package, and a literal importlib.import_module counts."""
    source = ("import os\nfrom . import fork\nfrom ..tui import app\nclass C:\n    import grokmon.tui\n"
              "def f():\n    import textual.app\n    importlib.import_module('plotext')\n"
              "    g = lambda: __import__('grokmon.tui.state')\n")
    target = tmp_path / "grokmon" / "experiments" / "probe_module.py"
    target.parent.mkdir(parents=True)
    target.write_text(source)
    sites = {(s.module, s.line, s.in_function) for s in import_sites(target, root=tmp_path)}
    assert {("os", 1, False), ("grokmon.experiments.fork", 2, False), ("grokmon.tui.app", 3, False),
            ("grokmon.tui", 5, False), ("textual.app", 7, True), ("plotext", 8, True),
            ("grokmon.tui.state", 9, True)} <= sites
    assert str(ImportSite("grokmon/x.py", 3, "textual", False)) == "grokmon/x.py:3 imports textual (at module level)"


def test_no_module_outside_tui_imports_textual() -> None:
    """No grokmon module outside grokmon/tui/ imports textual (or textual_plotext), at any depth."""
    offenders = [site for path in non_tui_sources() for site in import_sites(path) if _top(site.module) in TEXTUAL]
    assert not offenders, "textual is for grokmon/tui/ only:\n" + _lines(offenders)


def test_plotext_is_imported_only_by_plots_and_the_tui() -> None:
    """plotext is imported by grokmon/plots.py and modules under grokmon/tui/ only."""
    offenders = [site for path in non_tui_sources() for site in import_sites(path)
                 if _top(site.module) == "plotext" and site.path not in PLOTEXT_ALLOWED]
    assert not offenders, "plotext belongs in grokmon/plots.py or grokmon/tui/:\n" + _lines(offenders)


def test_tui_is_imported_only_lazily_by_the_cli() -> None:
    """grokmon.tui (any submodule) is imported only by grokmon/cli.py, and there only inside a function,
    so that `import grokmon.cli` and every other module load no UI. (A module-level import under
    `if TYPE_CHECKING:` counts as module level too: keep the annotation a string instead.)"""
    offenders = [site for path in non_tui_sources() for site in import_sites(path)
                 if _is_tui(site.module) and not (site.path in TUI_ALLOWED and site.in_function)]
    assert not offenders, "grokmon.tui may only be imported inside a function of grokmon/cli.py:\n" + _lines(offenders)


# Imports the given modules in order in a fresh interpreter; after each, the UI packages it newly loaded.
# Stops at the first module that loads one (it would mask later ones) and prints JSON.
_IMPORT_CHECK = """
import importlib, json, sys
ui = lambda: {m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext', 'plotext')}
done, found = [], {}
for name in sys.argv[1:]:
    before = ui()
    try:
        importlib.import_module(name)
    except Exception as exc:
        found[name] = ['import failed: ' + type(exc).__name__ + ': ' + str(exc)[:200]]
        break
    done.append(name)
    new = sorted(ui() - before)
    if new:
        found[name] = new
        break
print(json.dumps({'done': done, 'found': found}))
"""


def _import_in_fresh_interpreters(modules: list[str]) -> dict[str, list[str]]:
    """{module: UI packages its import loaded (or the import error)}, restarting after each offender."""
    found: dict[str, list[str]] = {}
    rest = list(modules)
    while rest:
        proc = subprocess.run([sys.executable, "-c", _IMPORT_CHECK, *rest], capture_output=True, text=True,
                              cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        found.update(out["found"])
        rest = rest[len(out["done"]) + (1 if out["found"] else 0):]
    return found


def test_importing_any_module_outside_tui_loads_no_ui() -> None:
    """`import grokmon.X` in a fresh interpreter leaves textual and plotext out of sys.modules, for every
    module outside grokmon/tui/ (grokmon.__main__ runs the CLI, so it is not imported); grokmon.plots may
    load plotext but not textual. Modules are imported in one interpreter, in order, plots last; a new
    interpreter takes over after an offender so that it cannot hide the next one."""
    modules = [module_name(p) for p in non_tui_sources() if p.name != "__main__.py"]
    modules = sorted(m for m in modules if m != "grokmon.plots") + ["grokmon.plots"]
    found = _import_in_fresh_interpreters(modules)
    if "grokmon.plots" in found and found["grokmon.plots"] == ["plotext"]:
        del found["grokmon.plots"]
    assert not found, "importing these loaded UI packages (or failed):\n" + "\n".join(
        f"import {m}: {', '.join(v)}" for m, v in found.items())


def test_pure_modules_do_not_import_the_engine_or_sinks() -> None:
    """config, data, model, fourier and events know nothing of the loop, where results go, or the UI
    (`import x` and `from x import y` alike, at any depth)."""
    outer = ("grokmon.engine", "grokmon.sinks", "grokmon.rundir", "grokmon.session", "grokmon.cli", "grokmon.tui",
             "grokmon.experiments")
    offenders = [site for name in ("config", "data", "model", "fourier", "events")
                 for site in import_sites(PACKAGE / f"{name}.py")
                 if any(site.module == o or site.module.startswith(o + ".") for o in outer)]
    assert not offenders, "a pure module imports the outer layers:\n" + _lines(offenders)


def test_readme_quickstart_is_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:sh|bash)?\n(.*?)```", section, re.S)
    assert block, "README.md needs a Quickstart code block"
    torch_note = section.find("torch")
    assert 0 <= torch_note < block.start(), "the torch note must come before the install command"
    commands = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert "grokmon run" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci
