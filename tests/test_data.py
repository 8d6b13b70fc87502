"""Datasets: the token layout, the answers of every op, and the seeded split."""


from __future__ import annotations

import pytest

import torch

from grokmon.config import TaskConfig
from grokmon.data import make_dataset

pytestmark = pytest.mark.unit


def test_nanda_split_sizes() -> None:
    ds = make_dataset(TaskConfig(p=113, frac_train=0.3))
    assert ds.tokens.shape == (113 * 113, 3)
    assert (len(ds.train_idx), len(ds.val_idx)) == (3830, 8939)
    assert torch.all(ds.tokens[:, 2] == 113)  # '=' is token p


def test_split_is_a_seeded_partition() -> None:
    a = make_dataset(TaskConfig(p=31, seed=0))
    b = make_dataset(TaskConfig(p=31, seed=0))
    c = make_dataset(TaskConfig(p=31, seed=1))
    assert torch.equal(a.train_idx, b.train_idx) and not torch.equal(a.train_idx, c.train_idx)
    both = torch.cat([a.train_idx, a.val_idx]).sort().values
    assert torch.equal(both, torch.arange(31 * 31))
    assert a.train_mask.sum().item() == len(a.train_idx)


def test_answers_of_every_op() -> None:
    p = 7
    for op, fn in {
        "add": lambda x, y: (x + y) % p,
        "sub": lambda x, y: (x - y) % p,
        "mul": lambda x, y: (x * y) % p,
        "div": lambda x, y: (x * pow(y, p - 2, p)) % p,
    }.items():
        ds = make_dataset(TaskConfig(op=op, p=p))
        for (x, y, _), c in zip(ds.tokens.tolist(), ds.labels.tolist()):
            assert c == fn(x, y), (op, x, y)
        if op in ("mul", "div"):
            assert ds.tokens[:, :2].min().item() == 1 and len(ds.tokens) == (p - 1) ** 2
        else:
            assert len(ds.tokens) == p * p


def test_div_inverts_mul() -> None:
    p = 11
    ds = make_dataset(TaskConfig(op="div", p=p))
    for (x, y, _), c in zip(ds.tokens.tolist(), ds.labels.tolist()):
        assert (c * y) % p == x
