"""Profiles, overrides and the errors a user can make in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from grokmon.config import Config, apply_overrides, load_config, shipped_profiles
from grokmon.errors import ConfigError

pytestmark = pytest.mark.unit


def test_shipped_profiles_load_and_are_distinct() -> None:
    names = set(shipped_profiles())
    assert {"default", "fsd", "quick"} <= names
    cfgs = {n: load_config(n) for n in names}
    assert cfgs["default"].task.p == 113 and cfgs["default"].model.n_layers == 1
    assert cfgs["fsd"].model.n_layers == 2
    assert all(c.description for c in cfgs.values())


def test_default_profile_is_nanda() -> None:
    c = load_config("default")
    assert (c.task.op, c.task.p, c.task.frac_train) == ("add", 113, 0.3)
    assert (c.model.d_model, c.model.n_heads, c.model.d_head, c.model.d_mlp) == (128, 4, 32, 512)
    assert (c.optim.lr, c.optim.weight_decay, c.optim.beta1, c.optim.beta2) == (1e-3, 1.0, 0.9, 0.98)
    assert c.optim.warmup_steps == 10 and c.train.batch_size == 0


def test_profile_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[task]\nop = "mul"\np = 97\n')
    c = load_config(str(path))
    assert (c.task.op, c.task.p, c.profile) == ("mul", 97, "mine")


def test_overrides_parse_types() -> None:
    c = apply_overrides(load_config("default"), [
        "optim.weight_decay=2", "train.device=cpu", "model.attn_only=true", "task.op=\"sub\"",
    ])
    assert c.optim.weight_decay == 2.0 and isinstance(c.optim.weight_decay, float)
    assert c.train.device == "cpu" and c.model.attn_only is True and c.task.op == "sub"


def test_config_is_frozen() -> None:
    c = Config()
    with pytest.raises(AttributeError):
        c.task.p = 7  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["optim.weight_dacay=1"], "did you mean 'weight_decay'"),
        (["optimm.lr=1"], "did you mean 'optim'"),
        (["task.p=abc"], "expected an integer, got 'abc'"),
        (["task.p=1.5"], "expected an integer"),
        (["model.attn_only=1"], "expected true or false"),
        (["task.op=mul", "task.p=100"], "task.p: expected a prime"),
        (["task.frac_train=1.0"], "strictly between 0 and 1"),
        (["task.frac_train=0"], "strictly between 0 and 1"),
        (["optim.weight_decay=-0.1"], "optim.weight_decay: expected a number in [0, 10000]"),
        (["model.d_model=130"], "a multiple of model.n_heads"),
        (["model.attn_only=true", "model.mlp_only=true"], "model.mlp_only"),
        (["task.op=pow"], "one of add, sub, mul, div"),
        (["train.eval_every=0"], "train.eval_every"),
        (["train.device=tpu"], "train.device"),
        (["metrics.fsd_statistic=kendall"], "'overlap' or 'pearson'"),
        (["optim.lr"], "expected section.key=value"),
        (["lr=3"], "expected section.key=value"),
    ],
)
def test_bad_overrides_name_key_and_expectation(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(load_config("default"), overrides)
    assert fragment in str(err.value)
    assert str(err.value).startswith("--set")
    assert "\n" not in str(err.value)


def test_bad_profile_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[task\np = 3\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_config(str(broken))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[task]\nmodulus = 7\n")
    with pytest.raises(ConfigError, match=r"unknown.toml: task.modulus: unknown key"):
        load_config(str(unknown))
    table = tmp_path / "table.toml"
    table.write_text("[trian]\nmax_steps = 7\n")
    with pytest.raises(ConfigError, match=r"did you mean 'train'"):
        load_config(str(table))
    with pytest.raises(ConfigError, match="no such profile file"):
        load_config(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"unknown profile 'quik' \(did you mean 'quick'\?\)"):
        load_config("quik")
