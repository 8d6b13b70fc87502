"""TrainingState: everything a run needs to continue bit-for-bit, as a typed and versioned record.

The checkpoint file holds `to_dict()`; `from_dict` checks the version and the layout and names what is
wrong in one line. Knows nothing about files (grokmon.rundir reads and writes them) or the engine's loop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from grokmon.errors import ConfigError

STATE_VERSION = 1  # the layout of to_dict(); bump it (and read the old one here) when the layout changes
_REQUIRED = {"step": int, "wall_s": (int, float), "model": Mapping, "optimizer": Mapping, "schedule": Mapping,
             "rng": Mapping}


@dataclass(frozen=True)
class TrainingState:
    step: int  # optimiser steps taken
    wall_s: float  # training wall time so far
    model: Mapping[str, Any]  # state_dict of grokmon.model.Transformer
    optimizer: Mapping[str, Any]  # AdamW state_dict: moments, step counts, param groups (lr, weight decay)
    base_lr: float  # the learning rate before warm-up scaling (set_lr changes it)
    rng: Mapping[str, Any]  # "torch" (CPU generator), "batch" (minibatch order), "cuda" (on a GPU)
    t_grok: int | None = None
    fsd_history: tuple[tuple[int, float, float], ...] = ()  # (step, fsd, p) per probe: replayed into the detector
    version: int = STATE_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys a newer writer added; kept, not interpreted

    def replace(self, **changes: Any) -> "TrainingState":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint file's layout (torch.save of this dict, loaded with weights_only=True)."""
        return {
            **dict(self.extra),
            "version": self.version,
            "step": self.step,
            "wall_s": self.wall_s,
            "model": dict(self.model),
            "optimizer": dict(self.optimizer),
            "schedule": {"base_lr": self.base_lr},
            "rng": dict(self.rng),
            "t_grok": -1 if self.t_grok is None else self.t_grok,
            "fsd_history": [list(h) for h in self.fsd_history],
        }

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> "TrainingState":
        """Check a loaded checkpoint and type it; anything unexpected is a ConfigError naming `source`."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"not a grokmon training state (a {type(raw).__name__}, expected a dict)", source=source)
        version = raw.get("version")
        if version != STATE_VERSION:
            raise ConfigError(f"training state version {version!r:.20} is not one this grokmon reads "
                              f"(expected {STATE_VERSION}); use the grokmon version that wrote it", source=source)
        for key, typ in _REQUIRED.items():
            value = raw.get(key)
            if value is None or isinstance(value, bool) or not isinstance(value, typ):
                raise ConfigError(f"not a full grokmon training state: '{key}' is missing or of the wrong type",
                                  source=source, key=key)
        if raw["step"] < 0:
            raise ConfigError(f"expected a step >= 0, got {raw['step']}", source=source, key="step")
        base_lr = raw["schedule"].get("base_lr")
        if isinstance(base_lr, bool) or not isinstance(base_lr, (int, float)):
            raise ConfigError("expected a number", source=source, key="schedule.base_lr")
        if "torch" not in raw["rng"] or "batch" not in raw["rng"]:
            raise ConfigError("expected the 'torch' and 'batch' generator states", source=source, key="rng")
        t_grok = raw.get("t_grok", -1)
        t_grok = t_grok if isinstance(t_grok, int) and not isinstance(t_grok, bool) and t_grok >= 0 else None
        history = []
        for item in raw.get("fsd_history") or []:
            try:
                step, value, p_value = item
                history.append((int(step), float(value), float(p_value)))
            except (TypeError, ValueError):
                raise ConfigError("expected [step, fsd, p] entries", source=source, key="fsd_history") from None
        known = {"version", "step", "wall_s", "model", "optimizer", "schedule", "rng", "t_grok", "fsd_history"}
        return cls(step=int(raw["step"]), wall_s=float(raw["wall_s"]), model=raw["model"],
                   optimizer=raw["optimizer"], base_lr=float(base_lr), rng=raw["rng"], t_grok=t_grok,
                   fsd_history=tuple(history), extra={k: v for k, v in raw.items() if k not in known})
