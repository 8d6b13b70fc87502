"""The FLOP recorder of benchmarks/bench_train.py on products whose count is known: 2*m*n*k each."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

pytestmark = pytest.mark.unit

M, K, N = 7, 5, 3


def _load_bench() -> ModuleType:
    # benchmarks/ is not a package: load the script from its path (registered first: its dataclasses
    # look their module up in sys.modules).
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"
    spec = importlib.util.spec_from_file_location("bench_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def test_a_matmul_is_one_product_of_2mnk() -> None:
    a, b = torch.randn(M, K), torch.randn(K, N)
    with bench.MatmulRecorder() as rec:
        a @ b  # [M, K] @ [K, N]
    assert [p.func.overloadpacket for p in rec.products] == [torch.ops.aten.mm]
    assert [o.shape for o in rec.products[0].operands] == [(M, K), (K, N)]
    assert rec.flops == 2 * M * N * K


def test_a_batched_matmul_counts_every_batch() -> None:
    with bench.MatmulRecorder() as rec:
        torch.einsum("bmk,bkn->bmn", torch.randn(4, M, K), torch.randn(4, K, N))
    assert rec.flops == 4 * 2 * M * N * K


@pytest.mark.parametrize("input_grad", [False, True])
def test_a_linear_layers_backward_is_recorded(input_grad: bool) -> None:
    lin = torch.nn.Linear(K, N)  # weight [N, K]
    x = torch.randn(M, K, requires_grad=input_grad)
    with bench.MatmulRecorder() as rec:
        lin(x).sum().backward()
    # forward addmm, the weight's gradient, and the input's gradient only where the input wants one
    assert len(rec.products) == (3 if input_grad else 2)
    assert all(p.flops == 2 * M * N * K for p in rec.products)
    assert rec.products[0].func.overloadpacket == torch.ops.aten.addmm


def test_autocast_products_are_recorded_in_bf16() -> None:
    lin = torch.nn.Linear(K, N)
    with bench.MatmulRecorder() as rec, torch.autocast("cpu", dtype=torch.bfloat16):
        lin(torch.randn(M, K))
    assert [p.dtype for p in rec.products] == [torch.bfloat16]


def test_a_replay_runs_the_recorded_geometry() -> None:
    a, b = torch.randn(K, M).t(), torch.randn(N, K).t()  # both operands transposed: strides (1, M), (1, K)
    with bench.MatmulRecorder() as rec:
        a @ b
    (product,) = rec.products
    assert [o.layout() for o in product.operands] == ["T", "T"]
    with bench.MatmulRecorder() as again:
        out = product.replay(torch.Generator().manual_seed(0))()
    assert again.products == rec.products
    assert out.shape == (M, N)
