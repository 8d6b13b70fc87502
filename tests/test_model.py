"""The transformer: TransformerLens names and shapes, init scale, and fast == plain in float64."""

from __future__ import annotations

import math

import pytest
import torch

from grokmon.config import ModelConfig, TaskConfig
from grokmon.data import make_dataset
from grokmon.model import Transformer, loss_fn

SMALL = dict(d_model=32, n_heads=4, d_head=8, d_mlp=48)


def test_parameter_names_and_shapes() -> None:
    m = Transformer(ModelConfig(), p=113)
    shapes = {name: tuple(p.shape) for name, p in m.named_parameters()}
    assert shapes == {
        "W_E": (114, 128), "W_pos": (3, 128),
        "blocks.0.attn.W_Q": (4, 128, 32), "blocks.0.attn.W_K": (4, 128, 32),
        "blocks.0.attn.W_V": (4, 128, 32), "blocks.0.attn.W_O": (4, 32, 128),
        "blocks.0.mlp.W_in": (128, 512), "blocks.0.mlp.b_in": (512,),
        "blocks.0.mlp.W_out": (512, 128), "blocks.0.mlp.b_out": (128,),
        "W_U": (128, 113),
    }


def test_init_scale_and_seed() -> None:
    m = Transformer(ModelConfig(d_model=256, d_mlp=1024, seed=3), p=113)
    assert m.W_E.std().item() == pytest.approx(1 / math.sqrt(256), rel=0.05)
    assert m.W_U.std().item() == pytest.approx(1 / math.sqrt(114), rel=0.05)
    assert m.blocks[0].mlp.b_in.abs().sum().item() == 0.0
    again = Transformer(ModelConfig(d_model=256, d_mlp=1024, seed=3), p=113)
    other = Transformer(ModelConfig(d_model=256, d_mlp=1024, seed=4), p=113)
    assert torch.equal(m.W_E, again.W_E) and not torch.equal(m.W_E, other.W_E)


def test_variants_drop_blocks() -> None:
    attn = Transformer(ModelConfig(attn_only=True, **SMALL), p=7)
    mlp = Transformer(ModelConfig(mlp_only=True, n_layers=2, **SMALL), p=7)
    assert all(b.mlp is None for b in attn.blocks)
    assert all(b.attn is None for b in mlp.blocks)
    assert tuple(mlp.blocks[0].mlp.W_in.shape) == (64, 48)  # reads [W_E[a] + pos, W_E[b] + pos]
    assert tuple(mlp.blocks[1].mlp.W_in.shape) == (32, 48)


@pytest.mark.parametrize("variant", [
    dict(), dict(n_layers=2), dict(n_layers=3), dict(attn_only=True), dict(attn_only=True, n_layers=2),
    dict(mlp_only=True), dict(mlp_only=True, n_layers=2),
])
@pytest.mark.parametrize("op", ["add", "div"])
def test_fast_forward_equals_plain_in_float64(variant: dict, op: str) -> None:
    """Outputs, gradients of every parameter, and the cached block outputs agree to float64 rounding."""
    ds = make_dataset(TaskConfig(op=op, p=13, frac_train=0.5))
    model = Transformer(ModelConfig(**SMALL, **variant), p=13).double()
    # Trained-looking weights, not just init: scale up so the attention pattern is far from uniform.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    cache_plain: dict[str, torch.Tensor] = {}
    cache_fast: dict[str, torch.Tensor] = {}
    plain = model.forward_plain(ds.tokens, cache_plain)
    fast = model(ds.tokens, cache_fast)
    assert plain.dtype == torch.float64
    close = lambda x, y, **kw: torch.testing.assert_close(  # noqa: E731
        x, y, rtol=1e-10, atol=1e-10 * max(1.0, y.abs().max().item()), **kw)  # float64 rounding, scale-aware
    close(fast, plain)
    params = list(model.parameters())
    g_plain = torch.autograd.grad(loss_fn(plain, ds.labels), params)
    g_fast = torch.autograd.grad(loss_fn(fast, ds.labels), params)
    for (name, _), a, b in zip(model.named_parameters(), g_fast, g_plain):
        close(a, b, msg=f"gradient of {name}")
    assert cache_fast.keys() == cache_plain.keys() and cache_fast
    for key in cache_plain:
        close(cache_fast[key], cache_plain[key])


def test_loss_is_computed_in_float64() -> None:
    """A float32 log-softmax floors near 1e-7; the float64 one resolves far smaller losses."""
    logits = torch.zeros(1, 5)
    logits[0, 2] = 30.0
    loss = loss_fn(logits, torch.tensor([2]))
    assert loss.dtype == torch.float64
    assert 0 < loss.item() < 1e-11
    f32 = torch.nn.functional.cross_entropy(logits, torch.tensor([2])).item()
    assert f32 == 0.0 or f32 > 1e-9
