"""Run configuration: frozen nested dataclasses loaded from a TOML profile plus `--set` overrides.

Owns parsing and validation only; every error names the file, the key and what was expected.
Knows nothing about torch, training or the UI.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from grokmon.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

OPS = ("add", "sub", "mul", "div")
WD_SCHEDULES = ("constant", "fsd", "step")
PRECISIONS = ("fp32", "bf16", "fp64")  # train.precision: the training step's arithmetic (docs/performance.md)


@dataclass(frozen=True)
class TaskConfig:
    op: str = "add"
    p: int = 113
    frac_train: float = 0.3
    seed: int = 0  # shuffles the split


@dataclass(frozen=True)
class ModelConfig:
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    attn_only: bool = False
    mlp_only: bool = False
    seed: int = 0  # initialisation


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_steps: int = 10
    fused: bool = True  # fused AdamW where this torch supports it on the device


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 25000
    batch_size: int = 0  # 0 = full batch
    eval_every: int = 100
    checkpoint_every: int = 1000
    stop_after_grok: int = -1  # steps to keep training after t_grok; -1 = never stop early
    device: str = "auto"  # "auto" = cuda if available, else cpu; or any torch device string
    fast: bool = True  # last-position MLP/unembed and layer-0 token tables
    compile: bool = False  # torch.compile the training step
    precision: str = "fp32"  # the training step's arithmetic: "fp32", "bf16" (autocast matmuls) or "fp64"
    tf32: bool = False  # CUDA only: let fp32 matmuls use TF32 tensor cores
    seed: int = 0  # minibatch order


@dataclass(frozen=True)
class MetricsConfig:
    metrics_every: int = 5  # Fourier metrics every N evaluations; 0 = off
    n_perm: int = 1000
    alpha: float = 0.05
    fsd_statistic: str = "overlap"
    fsd_top_m: int = 5


@dataclass(frozen=True)
class ScheduleConfig:
    # Weight decay over the run (docs/metrics.md): "constant"; "fsd" raises it to kappa * optim.weight_decay
    # when the online FSD ceiling detector fires; "step" raises it to the same value at step `at_step`.
    weight_decay: str = "constant"
    kappa: float = 2.0
    at_step: int = 0


@dataclass(frozen=True)
class RunConfig:
    name: str = ""  # run-directory prefix; empty = the profile's name
    runs_dir: str = "runs"
    wd_factor: float = 2.0  # the TUI's w / W multiply / divide weight decay by this


@dataclass(frozen=True)
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    run: RunConfig = field(default_factory=RunConfig)
    profile: str = "default"
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, section: str, **changes: Any) -> "Config":
        """A copy with some keys of one section changed (validated again)."""
        new = dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})
        validate(new, "<replace>")
        return new


_SECTION_TYPES = {
    "task": TaskConfig, "model": ModelConfig, "optim": OptimConfig,
    "train": TrainConfig, "metrics": MetricsConfig, "schedule": ScheduleConfig, "run": RunConfig,
}
_TOP_KEYS = ("description",)
LEGACY_META_KEYS = ("torch_version", "device", "n_params", "n_train", "n_val")  # config.json of format 0


# ---------------------------------------------------------------------------------------------
# profiles


def profiles_dir() -> Path:
    """Where the shipped profiles live: installed as grokmon/profiles, or profiles/ in a checkout."""
    try:
        shipped = Path(str(resources.files("grokmon") / "profiles"))
        if shipped.is_dir():
            return shipped
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        pass
    return Path(__file__).resolve().parent.parent / "profiles"


def shipped_profiles() -> dict[str, Path]:
    d = profiles_dir()
    return {p.stem: p for p in sorted(d.glob("*.toml"))} if d.is_dir() else {}


def resolve_profile(name_or_path: str) -> Path:
    """A profile argument is a path to a .toml file or the bare name of a shipped profile."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or "/" in name_or_path or path.exists():
        if not path.is_file():
            raise ConfigError("no such profile file", source=str(path))
        return path
    shipped = shipped_profiles()
    if name_or_path in shipped:
        return shipped[name_or_path]
    hint = _did_you_mean(name_or_path, list(shipped))
    raise ConfigError(
        f"unknown profile '{name_or_path}'{hint}; shipped profiles: {', '.join(shipped) or 'none'}"
        " (or give a path to a .toml file)",
        source="profile",
    )


def profile_description(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return str(tomllib.load(f).get("description", ""))
    except (OSError, tomllib.TOMLDecodeError):
        return "(unreadable)"


# ---------------------------------------------------------------------------------------------
# loading


def load_config(profile: str = "default", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Resolve a profile, apply `section.key=value` overrides and validate the result."""
    path = resolve_profile(profile)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read profile: {e.strerror or e}", source=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", source=str(path)) from None
    name = path.stem
    cfg = from_dict(raw, source=str(path), profile=name)
    return apply_overrides(cfg, overrides)


def from_dict(raw: Mapping[str, Any], *, source: str, profile: str = "custom") -> Config:
    """Build a Config from nested tables; unknown keys and wrong types are errors."""
    sections: dict[str, Any] = {}
    top: dict[str, Any] = {"profile": str(raw.get("profile", profile))}
    for key, value in raw.items():
        if key == "profile":
            continue
        if key in _TOP_KEYS:
            top[key] = _coerce(value, str, source, key)
            continue
        if key not in _SECTION_TYPES:
            hint = _did_you_mean(key, list(_SECTION_TYPES) + list(_TOP_KEYS))
            raise ConfigError(
                f"unknown table [{key}]{hint}; expected one of {', '.join(_SECTION_TYPES)}",
                source=source, key=key,
            )
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a table [{key}], got {type(value).__name__}", source=source, key=key)
        sections[key] = _build_section(key, value, source)
    cfg = Config(**sections, **top)
    validate(cfg, source)
    return cfg


def _build_section(section: str, table: Mapping[str, Any], source: str) -> Any:
    cls = _SECTION_TYPES[section]
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in table.items():
        dotted = f"{section}.{key}"
        if key not in known:
            hint = _did_you_mean(key, list(known))
            raise ConfigError(f"unknown key{hint}", source=source, key=dotted)
        default = getattr(cls(), key)
        values[key] = _coerce(value, type(default), source, dotted)
    return cls(**values)


def _coerce(value: Any, typ: type, source: str, key: str) -> Any:
    """TOML values to the field's type; ints are accepted where floats are expected, not the reverse."""
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    raise ConfigError(f"expected {names[typ]}, got {value!r}", source=source, key=key)


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...], source: str = "--set") -> Config:
    """Apply `section.key=value` strings; the value is parsed as a TOML value, else taken as a string."""
    if not overrides:
        return cfg
    raw: dict[str, Any] = {k: dict(v) for k, v in cfg.to_dict().items() if k in _SECTION_TYPES}
    top = {"profile": cfg.profile, "description": cfg.description}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"expected section.key=value, got '{item}'", source=source)
        dotted, text = item.split("=", 1)
        dotted = dotted.strip()
        if "." not in dotted:
            raise ConfigError(f"expected section.key=value, got '{item}'", source=source, key=dotted)
        section, key = dotted.split(".", 1)
        if section not in _SECTION_TYPES:
            hint = _did_you_mean(section, list(_SECTION_TYPES))
            raise ConfigError(f"unknown section '{section}'{hint}", source=source, key=dotted)
        if key not in raw[section]:
            hint = _did_you_mean(key, list(raw[section]))
            raise ConfigError(f"unknown key{hint}", source=source, key=dotted)
        raw[section][key] = _parse_value(text.strip())
    return from_dict({**raw, **top}, source=source, profile=cfg.profile)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare words are strings: --set train.device=cpu


def config_from_json(path: Path) -> Config:
    """Read a run directory's config.json back (the file written at run start)."""
    try:
        raw = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or e}", source=str(path)) from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"not valid JSON: {e}", source=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a JSON object", source=str(path))
    # Run directories written before run.json existed kept their metadata in config.json: set it aside.
    # Anything else unknown is an error, as in a profile.
    raw = {k: v for k, v in raw.items() if k not in LEGACY_META_KEYS}
    profile = raw.get("profile", "custom")
    if not isinstance(profile, str):
        raise ConfigError(f"expected a string, got {profile!r:.40}", source=str(path), key="profile")
    return from_dict(raw, source=str(path), profile=profile)


# ---------------------------------------------------------------------------------------------
# validation


P_MAX = 65521  # the largest prime task.p may be; memory sets the practical bound far lower (README)
INT_MAX = 2**31 - 1  # no size or step count beyond this is meaningful here


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin: exact for every n < 3.3e24 and fast for any size (never trial division)."""
    if n < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    if n in small:
        return True
    if any(n % q == 0 for q in small):
        return False
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in small:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def n_pairs(op: str, p: int) -> int:
    """How many (a, b) pairs the task has: p^2 for add / sub, (p-1)^2 for mul / div (b = 0 has no inverse)."""
    return (p - 1) ** 2 if op in ("mul", "div") else p * p


def validate(cfg: Config, source: str) -> None:
    """Range and consistency checks; raises ConfigError naming the first bad key."""

    def bad(key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"expected {expected}, got {value!r}", source=source, key=key)

    from grokmon.interventions import LR_RANGE, WEIGHT_DECAY_RANGE

    t, m, o, tr, me, r = cfg.task, cfg.model, cfg.optim, cfg.train, cfg.metrics, cfg.run
    for section in _SECTION_TYPES:  # the generic checks first: non-finite numbers, integers beyond reason
        for f in fields(_SECTION_TYPES[section]):
            value = getattr(getattr(cfg, section), f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise bad(f"{section}.{f.name}", "a finite number", value)
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
                raise bad(f"{section}.{f.name}", f"an integer of at most {INT_MAX}", _short(value))
    if t.op not in OPS:
        raise bad("task.op", "one of " + ", ".join(OPS), t.op)
    if not 3 <= t.p <= P_MAX:
        raise bad("task.p", f"a prime from 3 to {P_MAX}", _short(t.p))
    if t.op in ("mul", "div") and not is_prime(t.p):
        raise bad("task.p", f"a prime (op '{t.op}' needs inverses mod p)", t.p)
    if t.op in ("add", "sub") and not is_prime(t.p):
        # Fourier metrics assume a prime modulus (docs/metrics.md); training would work, the science not.
        raise bad("task.p", "a prime (the Fourier basis and FSD assume one)", t.p)
    if not 0.0 < t.frac_train < 1.0:
        raise bad("task.frac_train", "a number strictly between 0 and 1", t.frac_train)
    n_train = int(t.frac_train * n_pairs(t.op, t.p))
    if not 1 <= n_train < n_pairs(t.op, t.p):
        raise bad("task.frac_train", f"a fraction that leaves pairs in both splits ({n_pairs(t.op, t.p)} pairs: "
                  f"{n_train} would train)", t.frac_train)
    for key in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp"):
        if getattr(m, key) < 1:
            raise bad(f"model.{key}", "an integer >= 1", getattr(m, key))
    if m.d_model % m.n_heads != 0:
        raise bad("model.d_model", f"a multiple of model.n_heads ({m.n_heads})", m.d_model)
    if m.attn_only and m.mlp_only:
        raise bad("model.mlp_only", "false when model.attn_only is true (a model needs some block)", m.mlp_only)
    if not o.lr > 0 or o.lr > LR_RANGE.high:
        raise bad("optim.lr", f"a number in {LR_RANGE}", o.lr)
    if not WEIGHT_DECAY_RANGE.low <= o.weight_decay <= WEIGHT_DECAY_RANGE.high:
        raise bad("optim.weight_decay", f"a number in {WEIGHT_DECAY_RANGE}", o.weight_decay)
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(o, key) < 1.0:
            raise bad(f"optim.{key}", "a number in [0, 1)", getattr(o, key))
    if o.warmup_steps < 0:
        raise bad("optim.warmup_steps", "an integer >= 0", o.warmup_steps)
    if tr.max_steps < 0:
        raise bad("train.max_steps", "an integer >= 0", tr.max_steps)
    if tr.batch_size < 0:
        raise bad("train.batch_size", "an integer >= 0 (0 = full batch)", tr.batch_size)
    if tr.eval_every < 1:
        raise bad("train.eval_every", "an integer >= 1", tr.eval_every)
    if tr.checkpoint_every < 1:
        raise bad("train.checkpoint_every", "an integer >= 1", tr.checkpoint_every)
    if tr.stop_after_grok < -1:
        raise bad("train.stop_after_grok", "an integer >= 0, or -1 to never stop early", tr.stop_after_grok)
    if not (tr.device == "auto" or tr.device == "cpu" or tr.device.startswith(("cuda", "mps", "xpu"))):
        raise bad("train.device", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", tr.device)
    if tr.precision not in PRECISIONS:
        raise bad("train.precision", "one of " + ", ".join(f"'{p}'" for p in PRECISIONS), tr.precision)
    if me.metrics_every < 0:
        raise bad("metrics.metrics_every", "an integer >= 0 (0 = off)", me.metrics_every)
    if me.n_perm < 1:
        raise bad("metrics.n_perm", "an integer >= 1", me.n_perm)
    if not 0.0 < me.alpha < 1.0:
        raise bad("metrics.alpha", "a number strictly between 0 and 1", me.alpha)
    if me.fsd_statistic not in ("overlap", "pearson"):
        raise bad("metrics.fsd_statistic", "'overlap' or 'pearson'", me.fsd_statistic)
    if me.fsd_top_m < 1:
        raise bad("metrics.fsd_top_m", "an integer >= 1", me.fsd_top_m)
    sc = cfg.schedule
    if sc.weight_decay not in WD_SCHEDULES:
        raise bad("schedule.weight_decay", "one of " + ", ".join(f"'{w}'" for w in WD_SCHEDULES), sc.weight_decay)
    if not (math.isfinite(sc.kappa) and sc.kappa > 0):
        raise bad("schedule.kappa", "a number > 0 (the new weight decay is kappa * optim.weight_decay)", sc.kappa)
    if sc.weight_decay == "step" and sc.at_step < 1:
        raise bad("schedule.at_step", "an integer >= 1 for schedule.weight_decay = 'step'", sc.at_step)
    if sc.weight_decay == "fsd" and me.metrics_every == 0:
        raise bad("metrics.metrics_every", "an integer >= 1: schedule.weight_decay = 'fsd' needs the FSD probe",
                  me.metrics_every)
    if not r.wd_factor > 1.0:
        raise bad("run.wd_factor", "a number > 1", r.wd_factor)
    if "/" in r.name or r.name.startswith("."):
        raise bad("run.name", "a plain name without '/' or a leading '.'", r.name)


def _short(value: Any) -> Any:
    """A value for an error line: huge integers by their size, not their 400 digits."""
    return f"an integer of {len(str(value))} digits" if isinstance(value, int) and abs(value) > 10**12 else value


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
