"""The transformer: TransformerLens names and shapes, init, the reference cache, and fast == reference in float64."""

from __future__ import annotations

import math

import pytest
import torch

from grokmon.config import ModelConfig, TaskConfig
from grokmon.data import make_dataset
from grokmon.fast import train_forward
from grokmon.model import HOOK_SHAPES, Transformer, loss_fn

pytestmark = pytest.mark.unit

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


def test_state_dict_keys_and_init_unchanged() -> None:
    """Saved checkpoints load and seeded runs reproduce: the keys (in order) and the generator's draw order
    (first and last value of each tensor, recorded from the model before the reference/kernel split)."""
    m = Transformer(ModelConfig(n_layers=2, seed=1, **SMALL), p=13)
    state = m.state_dict()
    assert list(state) == [
        "W_E", "W_pos", "W_U",
        "blocks.0.attn.W_Q", "blocks.0.attn.W_K", "blocks.0.attn.W_V", "blocks.0.attn.W_O",
        "blocks.0.mlp.W_in", "blocks.0.mlp.b_in", "blocks.0.mlp.W_out", "blocks.0.mlp.b_out",
        "blocks.1.attn.W_Q", "blocks.1.attn.W_K", "blocks.1.attn.W_V", "blocks.1.attn.W_O",
        "blocks.1.mlp.W_in", "blocks.1.mlp.b_in", "blocks.1.mlp.W_out", "blocks.1.mlp.b_out",
    ]
    ends = {
        "W_E": (-0.2696898, -0.3290299),
        "W_pos": (-0.0017103, 0.0758825),
        "W_U": (-0.4519394, -0.2566277),
        "blocks.0.attn.W_Q": (0.0612798, 0.1265267),
        "blocks.0.attn.W_K": (-0.3717212, -0.0180815),
        "blocks.0.attn.W_V": (-0.3305495, -0.0466994),
        "blocks.0.attn.W_O": (0.0270279, -0.2254242),
        "blocks.0.mlp.W_in": (0.1961549, -0.2692127),
        "blocks.0.mlp.W_out": (0.0492204, 0.0336115),
        "blocks.1.attn.W_Q": (0.1674469, -0.0089957),
        "blocks.1.attn.W_K": (-0.1544516, 0.1346341),
        "blocks.1.attn.W_V": (-0.1132474, 0.3348373),
        "blocks.1.attn.W_O": (-0.2267389, -0.0682044),
        "blocks.1.mlp.W_in": (0.1921655, -0.1672721),
        "blocks.1.mlp.W_out": (0.2048481, -0.1200201),
    }
    for name, value in state.items():
        first_last = (value.flatten()[0].item(), value.flatten()[-1].item())
        assert first_last == pytest.approx(ends.get(name, (0.0, 0.0)), abs=1e-7), name


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


def _run_with_cache(model: Transformer, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    cache: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        logits = model(tokens, cache)
    return logits, cache


def test_cache_holds_transformerlens_hooks_at_full_shape() -> None:
    """Every hook of a 2-layer model, at its full shape; the last residual stream unembeds to the logits."""
    tokens = make_dataset(TaskConfig(op="add", p=13)).tokens[:10]
    model = Transformer(ModelConfig(n_layers=2, **SMALL), p=13)
    logits, cache = _run_with_cache(model, tokens)
    resid, qkv, pattern, mlp = (10, 3, 32), (10, 3, 4, 8), (10, 4, 3, 3), (10, 3, 48)
    expected = {"hook_embed": resid, "hook_pos_embed": resid}
    for layer in range(2):
        expected |= {f"blocks.{layer}.{name}": shape for name, shape in {
            "hook_resid_pre": resid, "attn.hook_q": qkv, "attn.hook_k": qkv, "attn.hook_v": qkv,
            "attn.hook_attn_scores": pattern, "attn.hook_pattern": pattern, "attn.hook_z": qkv,
            "hook_attn_out": resid, "hook_resid_mid": resid, "mlp.hook_pre": mlp, "mlp.hook_post": mlp,
            "hook_mlp_out": resid, "hook_resid_post": resid,
        }.items()}
    assert {k: tuple(v.shape) for k, v in cache.items()} == expected
    # HOOK_SHAPES documents exactly these names, with these shapes
    dims = dict(batch=10, pos=3, query_pos=3, key_pos=3, d_model=32, n_heads=4, d_head=8, d_mlp=48)
    documented = {name.format(l=layer): tuple(dims[d] for d in shape)
                  for name, shape in HOOK_SHAPES.items() for layer in range(2)}
    assert documented == expected
    torch.testing.assert_close(cache["blocks.1.hook_resid_post"][:, -1] @ model.W_U, logits)
    # the hooks are the stream's actual pieces, not copies that could drift
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])
    torch.testing.assert_close(cache["blocks.1.hook_resid_mid"],
                               cache["blocks.1.hook_resid_pre"] + cache["blocks.1.hook_attn_out"])
    torch.testing.assert_close(cache["blocks.1.attn.hook_pattern"].sum(-1), torch.ones(10, 4, 3))
    assert (cache["blocks.0.attn.hook_pattern"].triu(1) == 0).all()  # causal


def test_cache_of_the_variants() -> None:
    """attn_only: no MLP hooks and no resid_mid. mlp_only: block 0's MLP reads [a, b] once per example
    and writes only at '='; later blocks are per-position MLPs."""
    tokens = make_dataset(TaskConfig(op="add", p=13)).tokens[:10]
    attn_logits, attn = _run_with_cache(Transformer(ModelConfig(attn_only=True, **SMALL), p=13), tokens)
    assert not any("mlp" in k or "resid_mid" in k for k in attn) and "blocks.0.attn.hook_z" in attn
    torch.testing.assert_close(attn["blocks.0.hook_resid_post"],
                               attn["blocks.0.hook_resid_pre"] + attn["blocks.0.hook_attn_out"])

    model = Transformer(ModelConfig(mlp_only=True, n_layers=2, **SMALL), p=13)
    logits, cache = _run_with_cache(model, tokens)
    assert not any("attn" in k or "resid_mid" in k for k in cache)
    assert tuple(cache["blocks.0.mlp.hook_pre"].shape) == (10, 48)
    assert tuple(cache["blocks.1.mlp.hook_pre"].shape) == (10, 3, 48)
    assert tuple(cache["blocks.0.hook_mlp_out"].shape) == (10, 3, 32)
    assert (cache["blocks.0.hook_mlp_out"][:, :2] == 0).all()
    torch.testing.assert_close(cache["blocks.1.hook_resid_post"][:, -1] @ model.W_U, logits)


@pytest.mark.parametrize("variant", [
    dict(), dict(n_layers=2), dict(n_layers=3), dict(attn_only=True), dict(attn_only=True, n_layers=2),
    dict(attn_only=True, n_layers=3), dict(mlp_only=True), dict(mlp_only=True, n_layers=2),
])
@pytest.mark.parametrize("op", ["add", "div"])
def test_fast_kernel_equals_reference_in_float64(variant: dict, op: str) -> None:
    """grokmon.fast's contract: logits and the gradient of every parameter agree to float64 rounding."""
    ds = make_dataset(TaskConfig(op=op, p=13, frac_train=0.5))
    model = Transformer(ModelConfig(**SMALL, **variant), p=13).double()
    # Trained-looking weights, not just init: scale up so the attention pattern is far from uniform.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.1).mul_(3.0)  # nonzero biases too
    reference = model(ds.tokens)
    fast = train_forward(model)(ds.tokens)
    assert fast.dtype == torch.float64
    close = lambda x, y, **kw: torch.testing.assert_close(  # noqa: E731
        x, y, rtol=1e-10, atol=1e-10 * max(1.0, y.abs().max().item()), **kw)  # float64 rounding, scale-aware
    close(fast, reference)
    params = list(model.parameters())
    g_ref = torch.autograd.grad(loss_fn(reference, ds.labels), params)
    g_fast = torch.autograd.grad(loss_fn(fast, ds.labels), params)
    for (name, _), a, b in zip(model.named_parameters(), g_fast, g_ref):
        close(a, b, msg=f"gradient of {name}")


def test_fast_kernel_follows_the_parameters() -> None:
    """The engine builds the kernel once: it must read the parameters at each call, not capture them."""
    tokens = make_dataset(TaskConfig(op="add", p=13)).tokens
    model = Transformer(ModelConfig(n_layers=2, **SMALL), p=13)
    forward = train_forward(model)
    with torch.no_grad():
        model.load_state_dict(Transformer(ModelConfig(n_layers=2, seed=7, **SMALL), p=13).state_dict())
        torch.testing.assert_close(forward(tokens), model(tokens), rtol=1e-4, atol=1e-5)


def test_loss_is_computed_in_float64() -> None:
    """A float32 log-softmax floors near 1e-7; the float64 one resolves far smaller losses."""
    logits = torch.zeros(1, 5)
    logits[0, 2] = 30.0
    loss = loss_fn(logits, torch.tensor([2]))
    assert loss.dtype == torch.float64
    assert 0 < loss.item() < 1e-11
    f32 = torch.nn.functional.cross_entropy(logits, torch.tensor([2])).item()
    assert f32 == 0.0 or f32 > 1e-9
