"""The intervention registry: every command a user can send a run, in one table.

A row says what the command is called, which value it takes, how it changes the optimiser, what it logs,
how plots mark it, which keys send it, its help text and whether a fork may replay across it. The engine,
the control file, the TUI (bindings, help, markers, event log) and the fork all read this table; adding an
intervention is one row here plus its apply function. Knows nothing about the UI, files or signals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # annotations only: the registry is imported by code that must not load torch
    import torch


class Steerable(Protocol):
    """What an apply function may touch: the optimiser and the base learning rate (warm-up scales it)."""

    optimizer: "torch.optim.Optimizer"
    base_lr: float


@dataclass(frozen=True)
class ValueRange:
    """The values a hyperparameter may be set to: finite, within [low, high] (low excluded if open)."""

    low: float
    high: float
    low_open: bool = False

    def check(self, value: Any, what: str) -> float:
        """The value as a float, or ValueError with a one-line reason."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{what} needs a number, got {value!r:.40}")
        try:
            number = float(value)
        except OverflowError:  # a 400-digit integer
            raise ValueError(f"{what} needs a number in {self}, got an integer of {len(str(value))} digits") from None
        if not math.isfinite(number) or number > self.high or number < self.low or (self.low_open and number == self.low):
            raise ValueError(f"{what} needs a finite number in {self}, got {number:g}")
        return number

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Key:
    """A key binding: `key` sends the row's command; `scale` multiplies the current value by run.wd_factor
    (+1), divides by it (-1), or 0 = ask for an exact value (hyperparameters) / send as is (others)."""

    key: str
    display: str
    scale: int
    help: str


@dataclass(frozen=True)
class Intervention:
    kind: str  # the command name (control.jsonl "command", Command.kind)
    name: str  # the name in events.jsonl intervention records and metrics rows (weight_decay, lr, pause, ...)
    help: str  # one line for the help screen and the README
    apply: Callable[[Steerable, float | None], tuple[float | None, float | None]]  # -> (old, new)
    values: ValueRange | None = None  # None: the command takes no value
    marker: str | None = None  # the letter tagging its vertical line on the time plots; None: not drawn
    keys: tuple[Key, ...] = ()
    blocks_replay: bool = False  # a fork cannot replay across it from an earlier checkpoint
    past_tense: str = ""  # the event log's wording for a valueless command

    @property
    def takes_value(self) -> bool:
        return self.values is not None

    @property
    def hyperparameter(self) -> bool:
        """A value that metrics rows carry (the row key is `name`)."""
        return self.values is not None

    def check(self, value: Any) -> float | None:
        """The validated value (ValueError with a one-line reason otherwise)."""
        if self.values is None:
            if value is not None:
                raise ValueError(f"{self.kind} takes no value, got {value!r:.40}")
            return None
        return self.values.check(value, self.kind)

    def describe(self, old: Any, new: Any, source: str, fmt: Callable[[Any], str] = str) -> str:
        """The event log's line for an applied intervention."""
        by = f" ({source})" if source else ""
        if self.takes_value:
            return f"{self.name} {fmt(old)} -> {fmt(new)}{by}"
        return f"{self.past_tense or self.name}{by}"


# -- apply functions: run between optimiser steps, on the training thread --------------------------


def _set_weight_decay(run: Steerable, value: float | None) -> tuple[float | None, float | None]:
    old = float(run.optimizer.param_groups[0]["weight_decay"])
    for group in run.optimizer.param_groups:
        group["weight_decay"] = value  # read by the next optimizer.step()
    return old, value


def _set_lr(run: Steerable, value: float | None) -> tuple[float | None, float | None]:
    # The base rate: the engine's warm-up scales it per step and writes it into the param groups.
    old = run.base_lr
    run.base_lr = float(value)  # type: ignore[arg-type]
    return old, run.base_lr


def _no_change(run: Steerable, value: float | None) -> tuple[float | None, float | None]:
    return None, None  # pause, resume, checkpoint and stop act on the loop, not the optimiser


WEIGHT_DECAY_RANGE = ValueRange(0.0, 1e4)
LR_RANGE = ValueRange(0.0, 10.0, low_open=True)

REGISTRY: tuple[Intervention, ...] = (
    Intervention(
        "set_weight_decay", "weight_decay", "AdamW weight decay (decoupled), for every parameter",
        _set_weight_decay, WEIGHT_DECAY_RANGE, marker="w", blocks_replay=True,
        keys=(Key("w", "w", +1, "multiply weight decay by {factor} (run.wd_factor)"),
              Key("W,shift+w", "W", -1, "divide weight decay by {factor}"),
              Key("d", "d", 0, "type an exact weight decay")),
    ),
    Intervention(
        "set_lr", "lr", "AdamW learning rate (the warm-up still scales it during its first steps)",
        _set_lr, LR_RANGE, marker="l", blocks_replay=True,
        keys=(Key("l", "l", +1, "multiply the learning rate by {factor}"),
              Key("L,shift+l", "L", -1, "divide the learning rate by {factor}")),
    ),
    Intervention("pause", "pause", "hold training between steps", _no_change, past_tense="paused",
                 keys=(Key("p", "p", 0, "pause / resume training"),)),
    Intervention("resume", "resume", "continue a paused run", _no_change, past_tense="resumed",
                 keys=(Key("p", "p", 0, "resume training"),)),
    Intervention("checkpoint", "checkpoint", "write a checkpoint now", _no_change,
                 past_tense="checkpoint requested", keys=(Key("c", "c", 0, "write a checkpoint now"),)),
    Intervention("stop", "stop", "stop at the next step boundary with a checkpoint and summary", _no_change,
                 past_tense="stop requested"),
)

BY_KIND: dict[str, Intervention] = {row.kind: row for row in REGISTRY}
BY_NAME: dict[str, Intervention] = {row.name: row for row in REGISTRY}
KINDS: tuple[str, ...] = tuple(BY_KIND)
HYPERPARAMETERS: tuple[str, ...] = tuple(row.name for row in REGISTRY if row.hyperparameter)
REPLAY_BLOCKERS: tuple[str, ...] = tuple(row.name for row in REGISTRY if row.blocks_replay)


def lookup(kind: str) -> Intervention:
    """The registry row of a command kind; ValueError naming the known ones otherwise."""
    row = BY_KIND.get(kind)
    if row is None:
        raise ValueError(f"unknown command {kind!r:.40}; expected one of {', '.join(KINDS)}")
    return row
