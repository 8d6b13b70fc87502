"""Modular-arithmetic datasets: every (a, b) pair of the op as `a b =` token rows, and the seeded split.

Owns the token layout (docs/metrics.md); knows nothing about models or training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokmon.config import TaskConfig


@dataclass(frozen=True)
class Dataset:
    """All pairs of one task, in grid order (a ascending, then b), and the train/val split."""

    p: int
    op: str
    tokens: torch.Tensor  # [n_pairs, 3] long: a, b, '=' (id p)
    labels: torch.Tensor  # [n_pairs] long, in 0..p-1
    train_idx: torch.Tensor  # [n_train] long indices into tokens
    val_idx: torch.Tensor  # [n_val]

    @property
    def train_mask(self) -> torch.Tensor:  # [n_pairs] bool
        mask = torch.zeros(self.tokens.shape[0], dtype=torch.bool)
        mask[self.train_idx] = True
        return mask

    @property
    def operands(self) -> tuple[int, int]:
        """The first and last value a and b take: 0..p-1 for add/sub, 1..p-1 for mul/div."""
        return (1, self.p - 1) if self.op in ("mul", "div") else (0, self.p - 1)


def answer(op: str, a: torch.Tensor, b: torch.Tensor, p: int) -> torch.Tensor:
    """c = a op b mod p, elementwise; div means a * b^-1 (b != 0)."""
    if op == "add":
        return (a + b) % p
    if op == "sub":
        return (a - b) % p
    if op == "mul":
        return (a * b) % p
    if op == "div":
        inv = torch.tensor([pow(int(x), p - 2, p) if x else 0 for x in range(p)], dtype=torch.long)
        return (a * inv[b]) % p
    raise ValueError(f"unknown op {op!r}")


def make_dataset(task: TaskConfig) -> Dataset:
    """All pairs, shuffled with task.seed; the first floor(frac_train * n) are train."""
    p = task.p
    lo = 1 if task.op in ("mul", "div") else 0
    values = torch.arange(lo, p, dtype=torch.long)
    a = values.repeat_interleave(len(values))
    b = values.repeat(len(values))
    eq = torch.full_like(a, p)
    tokens = torch.stack([a, b, eq], dim=1)
    labels = answer(task.op, a, b, p)
    gen = torch.Generator().manual_seed(task.seed)
    perm = torch.randperm(len(a), generator=gen)
    n_train = int(task.frac_train * len(a))
    return Dataset(p=p, op=task.op, tokens=tokens, labels=labels,
                   train_idx=perm[:n_train].sort().values, val_idx=perm[n_train:].sort().values)
