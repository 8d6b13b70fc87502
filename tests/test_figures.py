"""`grokmon report --save`: a run's figure, a fork's dt against 1/lambda and a sweep's leads, as PNG, SVG and PDF
files that are what their names say (magic bytes, a plausible size), and one-line errors without matplotlib."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from grokmon import cli
from test_ls_diff import summary_of, synthetic_rows, write_run
from test_report_experiments import write_fork, write_sweep

pytestmark = pytest.mark.integration

NEEDS_MPL = "matplotlib is not installed (pip install 'grokmon[plot]')"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished run with an intervention at step 400: markers at t_fsd, t_grok and the intervention."""
    rows = synthetic_rows(1000, grok_at=600, wd_change=(400, 2.0))
    events = [{"step": 0, "wall_s": 0.0, "time": 1.7e9, "type": "start", "device": "cpu"},
              {"step": 400, "wall_s": 4.1, "time": 1.7e9 + 4.1, "type": "intervention", "name": "weight_decay",
               "old": 1.0, "new": 2.0, "source": "control:abc"}]
    return write_run(tmp_path / "run", rows, summary=summary_of(rows), events=events)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_run_figure_as_png_from_the_cli(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason=NEEDS_MPL)
    target = tmp_path / "figs" / "run.png"  # the folder is made
    proc = run_cli("report", str(run_dir), "--save", str(target), "--no-plot")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == f"grokmon: figure written to {target}"
    assert "grokked: val_acc first >= 0.95 (t_grok)" in proc.stdout  # the table still prints
    data = target.read_bytes()
    width, height = png_size(data)
    assert (width, height) == (1400, 1500)  # 7 x 7.5 inches at 200 dpi
    assert 40_000 < len(data) < 2_000_000  # drawn, not blank


def test_run_figure_as_svg_keeps_its_labels_as_text(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason=NEEDS_MPL)
    target = tmp_path / "run.svg"
    assert cli.main(["report", str(run_dir), "--save", str(target), "--no-plot"]) == 0
    svg = target.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg[:2000]
    for label in ("accuracy", "loss", "FSD", "p-value (log)", "alpha = 0.05", "t_grok", "weight_decay 2", "step"):
        assert f">{label}<" in svg, label


def test_fork_and_sweep_figures_as_pdf_and_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason=NEEDS_MPL)
    fork_pdf = tmp_path / "fork.pdf"
    assert cli.main(["report", str(write_fork(tmp_path)), "--save", str(fork_pdf), "--no-plot"]) == 0
    data = fork_pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF") and len(data) > 5_000
    sweep_png = tmp_path / "sweep.png"
    assert cli.main(["report", str(write_sweep(tmp_path)), "--save", str(sweep_png), "--no-plot"]) == 0
    width, height = png_size(sweep_png.read_bytes())
    assert width == 1200 and height >= 500


def test_bad_target_or_missing_matplotlib_is_one_line_exit_2(run_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(run_dir), "--save", str(tmp_path / "fig.jpg")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().endswith("fig.jpg: expected a file name ending in .png, "
                                                                 ".svg, .pdf")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what a missing package looks like
    assert cli.main(["report", str(run_dir), "--save", str(tmp_path / "fig.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().splitlines() == [
        "grokmon: error: --save: needs matplotlib: pip install 'grokmon[plot]'"]
    assert not (tmp_path / "fig.png").exists()
