"""Immutable records that cross the thread boundary: engine -> sinks (events) and UI -> engine (commands).

Events carry plain numbers, strings and numpy arrays, never live tensors, so a sink on another thread
can keep them. Knows nothing about how they are shown or stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from grokmon.interventions import lookup


@dataclass(frozen=True)
class RunStarted:
    step: int  # the first step this process trains (0, or the checkpoint's step on resume)
    wall_s: float
    config: dict[str, Any]
    device: str
    n_params: int
    n_train: int
    n_val: int
    resumed: bool = False
    torch_version: str = ""


@dataclass(frozen=True)
class Evaluation:
    """One evaluation on the full train and val sets; `extra` holds the Fourier metrics when computed."""

    step: int
    wall_s: float
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    weight_decay: float
    extra: dict[str, Any] = field(default_factory=dict)
    spectra: dict[str, list[float]] = field(default_factory=dict)  # FSD component -> energy per k, when probed

    def record(self) -> dict[str, Any]:
        """The metrics.jsonl row: the fixed keys first, non-finite numbers as None."""
        row: dict[str, Any] = {
            "step": self.step, "wall_s": round(self.wall_s, 3),
            "train_loss": self.train_loss, "train_acc": self.train_acc,
            "val_loss": self.val_loss, "val_acc": self.val_acc,
            "lr": self.lr, "weight_decay": self.weight_decay,
        }
        row.update(self.extra)
        return {k: finite_or_none(v) for k, v in row.items()}


@dataclass(frozen=True)
class Intervention:
    """An applied command: weight_decay / lr changes, pause, resume, checkpoint, stop."""

    step: int
    wall_s: float
    name: str
    old: float | None = None
    new: float | None = None
    source: str = "api"


@dataclass(frozen=True)
class Alert:
    step: int
    wall_s: float
    kind: str  # "nonfinite_loss", "fsd_ceiling", ...
    message: str


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    wall_s: float
    path: str


@dataclass(frozen=True)
class Finished:
    step: int
    wall_s: float
    status: str  # "completed", "stopped", "interrupted", "diverged"
    reason: str = ""


@dataclass(frozen=True)
class Failed:
    """An exception escaped the training loop; the run directory keeps its last checkpoint."""

    step: int
    wall_s: float
    error: str
    traceback: str


Event = Union[RunStarted, Evaluation, Intervention, Alert, CheckpointSaved, Finished, Failed]
Sink = Callable[[Event], None]


@dataclass(frozen=True)
class Command:
    """UI -> engine: one row of the intervention registry (grokmon.interventions) and its value.

    Constructing one validates it: an unknown kind, a missing value or one out of range is a ValueError."""

    kind: str
    value: float | None = None
    source: str = "api"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", lookup(self.kind).check(self.value))


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or Infinity: non-finite floats become None, recursively through lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    return value
