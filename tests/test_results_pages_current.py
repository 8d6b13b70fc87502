"""The committed results pages are what `scripts/results.py render` writes from the committed JSON: a page edited
by hand, or JSON collected again without rendering, fails here (the check a reader makes by re-rendering)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
sys.path.insert(0, str(RESULTS.parent.parent / "scripts"))
import results  # noqa: E402  (scripts/results.py, the entry point)


@pytest.mark.unit
def test_every_committed_page_is_rendered_from_its_committed_json(tmp_path: Path) -> None:
    for path in RESULTS.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    written = results.render([], tmp_path, require_all=True)
    assert sorted(p.name for p in written) == sorted(f"{name}.md" for name in results.PAGES.values())
    for page in written:
        assert page.read_text() == (RESULTS / page.name).read_text(), \
            f"docs/results/{page.name} differs from its render: run `python scripts/results.py render`"
