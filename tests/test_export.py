"""`grokmon export`: a real tiny run (Fourier probe on every other evaluation, one intervention) exported as CSV
and as TensorBoard event files, each read back and compared value by value with the run's JSONL files."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grokmon import cli
from grokmon.config import Config
from grokmon.engine import Engine
from grokmon.events import Command
from grokmon.export import (
    CSV_COLUMNS, FREQS_CSV, LIST_ROW_KEYS, METRICS_CSV, SPECTRA_CSV, TB_NOT_SCALAR, TB_SCALARS, export,
)
from grokmon.rundir.readers import read_events, read_jsonl, read_rows
from grokmon.rundir.records import METRIC_ROW_KEYS
from grokmon.rundir.writer import RunDir

pytestmark = pytest.mark.engine

# The tags other tools read, written out here rather than taken from grokmon.export (the interface itself).
TAGS = {
    "accuracy/train": "train_acc", "accuracy/val": "val_acc", "loss/train": "train_loss", "loss/val": "val_loss",
    "fsd/fsd": "fsd", "fsd/p_value": "fsd_p", "fsd/z": "fsd_z",
    "progress/restricted_loss": "restricted_loss", "progress/excluded_loss": "excluded_loss",
    "progress/gini_embed": "gini_embed", "progress/gini_wl": "gini_wl", "progress/weight_norm": "weight_norm",
    "hparams/lr": "lr", "hparams/weight_decay": "weight_decay",
}
WD_AT_POLL = 50  # the engine polls its command sources once per step: the weight decay changes near step 50


class _OneCommand:
    """A command source that sends set_weight_decay 2 on its WD_AT_POLL-th poll."""

    def __init__(self) -> None:
        self.polls = 0

    def poll(self) -> list[Command | str]:
        self.polls += 1
        return [Command("set_weight_decay", 2.0, source="test")] if self.polls == WD_AT_POLL else []


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY
    from grokmon.config import apply_overrides, load_config

    cfg: Config = apply_overrides(load_config("default"), [*TINY, "metrics.metrics_every=2", "metrics.n_perm=50"])
    path = tmp_path_factory.mktemp("export") / "run"
    run = RunDir(path)
    Engine(cfg, sinks=[run], checkpointer=run, command_sources=[_OneCommand()]).run()
    run.close()
    return path


def _cell(value: Any) -> str:
    """What metrics.csv promises for a JSON value (docs/run-directory.md, "Export formats")."""
    return "" if value is None else ("true" if value else "false") if isinstance(value, bool) else str(value)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_schema_split_covers_every_metrics_key(run_dir: Path) -> None:
    """Every key of the schema is a CSV column or a list in freqs.csv, and a TensorBoard tag or deliberately
    not one; the list-valued keys are exactly the lists of a probed row."""
    assert CSV_COLUMNS == tuple(k for k in METRIC_ROW_KEYS if k not in ("top_freqs", "wl_top_freqs", "key_freqs"))
    assert set(TB_SCALARS) | set(TB_NOT_SCALAR) == set(METRIC_ROW_KEYS)
    probed = next(r for r in read_rows(run_dir) if r["fsd"] is not None)
    assert {k for k, v in probed.items() if isinstance(v, list)} == set(LIST_ROW_KEYS)


def test_csv_reads_back_value_by_value(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", str(run_dir), "--format", "csv"]) == 0
    out = run_dir / "export"
    assert str(out) in capsys.readouterr().out  # says where it wrote
    rows = read_rows(run_dir)
    header, lines = _read_csv(out / METRICS_CSV)
    assert tuple(header) == CSV_COLUMNS and len(lines) == len(rows) == 7
    nulls = 0
    for row, line in zip(rows, lines):
        for key in CSV_COLUMNS:
            value, cell = row.get(key), line[key]
            if isinstance(value, float):
                assert float(cell) == value, (row["step"], key)  # exact: repr round-trips
            else:
                assert cell == _cell(value), (row["step"], key)
            nulls += value is None
    assert nulls > 0 and any(r["fsd"] is not None for r in rows)  # both kinds of probe rows were compared

    spectra = read_jsonl(run_dir / "spectra.jsonl")
    header, lines = _read_csv(out / SPECTRA_CSV)
    assert header == ["step", "component", "k", "energy"]
    rebuilt: dict[int, dict[str, list[float]]] = {}
    for line in lines:
        energies = rebuilt.setdefault(int(line["step"]), {}).setdefault(line["component"], [])
        assert int(line["k"]) == len(energies) + 1
        energies.append(float(line["energy"]))
    assert rebuilt == {s["step"]: {k: v for k, v in s.items() if k != "step"} for s in spectra}

    header, lines = _read_csv(out / FREQS_CSV)
    assert header == ["step", "key", "rank", "k", "share"]
    lists: dict[tuple[int, str], list[Any]] = {}
    for line in lines:
        entry = int(line["k"]) if line["share"] == "" else [int(line["k"]), float(line["share"])]
        lists.setdefault((int(line["step"]), line["key"]), []).append(entry)
    assert lists == {(r["step"], k): r[k] for r in rows for k in LIST_ROW_KEYS if r.get(k)}


def test_tensorboard_reads_back_value_by_value(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed (pip install "
                                              "'grokmon[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    export(run_dir, "tensorboard", out)
    export(run_dir, "tensorboard", out)  # again: replaces the first export rather than doubling it
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    rows = read_rows(run_dir)
    assert sorted(acc.Tags()["scalars"]) == sorted(TAGS) and {v: k for k, v in TB_SCALARS.items()} == TAGS
    for tag, key in TAGS.items():
        want = [(r["step"], np.float32(r[key])) for r in rows if r.get(key) is not None]
        got = [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)]
        assert got == want and want, tag  # event files hold float32: equal after the same rounding
    texts = {tag: [(t.step, t.tensor_proto.string_val[0].decode()) for t in acc.Tensors(tag)]
             for tag in acc.Tags()["tensors"]}
    inter = [e for e in read_events(run_dir) if e["type"] == "intervention"]
    assert [s for s, _ in texts["interventions/text_summary"]] == [e["step"] for e in inter] and inter
    assert "weight_decay" in texts["interventions/text_summary"][0][1] and "-> 2.0" in \
        texts["interventions/text_summary"][0][1]
    assert any("finish: **completed**" in t for _, t in texts["events/text_summary"])
    top = [r for r in rows if r.get("top_freqs")]
    assert [s for s, _ in texts["freqs/top_freqs/text_summary"]] == [r["step"] for r in top]
    assert texts["freqs/top_freqs/text_summary"][0][1].startswith(f"k={top[0]['top_freqs'][0][0]} (")


def test_tensorboard_without_the_extra_is_one_line_exit_2(run_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what a missing package looks like
    out = tmp_path / "tb"
    assert cli.main(["export", str(run_dir), "--format", "tensorboard", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["grokmon: error: --format tensorboard: needs the tensorboard extra: "
                   "pip install 'grokmon[tensorboard]'"]
    assert not out.exists()


def test_a_sweep_directory_exports_each_run_under_its_name(run_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep"
    for name in ("p23-s0", "p23-s1"):
        shutil.copytree(run_dir, sweep / name, ignore=shutil.ignore_patterns("export", "checkpoints"))
    (sweep / "sweep.json").write_text("{}")
    export(run_dir, "csv", tmp_path / "one")
    assert cli.main(["export", str(sweep), "--format", "csv", "--out", str(tmp_path / "csv")]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # a line per run
    for name in ("p23-s0", "p23-s1"):
        for f in (METRICS_CSV, SPECTRA_CSV, FREQS_CSV):
            assert (tmp_path / "csv" / name / f).read_text() == (tmp_path / "one" / f).read_text()
    assert cli.main(["export", str(tmp_path / "csv"), "--format", "csv"]) == 2  # holds no run: one line
    assert "holds none" in capsys.readouterr().err
