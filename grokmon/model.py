"""The grokking transformer (Nanda et al. 2023) as a readable reference: no LayerNorm, learned positions.

Owns the parameters (TransformerLens names, shapes, seeded init) and what the forward means, every position
computed and cached under TransformerLens hook names. Knows nothing about speed (grokmon.fast), data or training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grokmon.config import ModelConfig

N_CTX = 3  # a, b, '='

# What `Transformer.forward(tokens, cache)` puts in `cache`: TransformerLens hook names ({l} = layer) and
# the full shape of each, as dimension names. Blocks hold only the hooks of the parts they have:
#   attn_only: no hook_resid_mid and no mlp hooks (resid_post = resid_pre + attn_out);
#   mlp_only: no attn hooks and no hook_resid_mid (resid_post = resid_pre + mlp_out). Its block 0 reads
#     [a, b] at once: mlp.hook_pre / hook_post are [batch, d_mlp] (one MLP input per example, positions a
#     and b of hook_resid_pre concatenated) and hook_mlp_out is zero at positions a and b, the MLP's
#     output at '='. Later mlp_only blocks are ordinary per-position MLPs.
# Values are not detached: keep them under torch.no_grad() unless their graph is wanted.
HOOK_SHAPES: dict[str, tuple[str, ...]] = {
    "hook_embed": ("batch", "pos", "d_model"),  # W_E[tokens]
    "hook_pos_embed": ("batch", "pos", "d_model"),  # W_pos, a view broadcast over the batch
    "blocks.{l}.hook_resid_pre": ("batch", "pos", "d_model"),
    "blocks.{l}.attn.hook_q": ("batch", "pos", "n_heads", "d_head"),
    "blocks.{l}.attn.hook_k": ("batch", "pos", "n_heads", "d_head"),
    "blocks.{l}.attn.hook_v": ("batch", "pos", "n_heads", "d_head"),
    # q.k / sqrt(d_head), -inf on future keys; then its softmax over key_pos
    "blocks.{l}.attn.hook_attn_scores": ("batch", "n_heads", "query_pos", "key_pos"),
    "blocks.{l}.attn.hook_pattern": ("batch", "n_heads", "query_pos", "key_pos"),
    "blocks.{l}.attn.hook_z": ("batch", "pos", "n_heads", "d_head"),  # pattern-weighted values, before W_O
    "blocks.{l}.hook_attn_out": ("batch", "pos", "d_model"),
    "blocks.{l}.hook_resid_mid": ("batch", "pos", "d_model"),  # resid_pre + attn_out
    "blocks.{l}.mlp.hook_pre": ("batch", "pos", "d_mlp"),  # before the ReLU
    "blocks.{l}.mlp.hook_post": ("batch", "pos", "d_mlp"),
    "blocks.{l}.hook_mlp_out": ("batch", "pos", "d_model"),
    "blocks.{l}.hook_resid_post": ("batch", "pos", "d_model"),
}

Cache = dict[str, torch.Tensor]


def _hook(cache: Cache | None, name: str, x: torch.Tensor) -> torch.Tensor:
    """Record x under `name` when a cache is passed; returns x, so a hook reads inline."""
    if cache is not None:
        cache[name] = x
    return x


def _normal(gen: torch.Generator, shape: tuple[int, ...], fan: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(shape, generator=gen) / math.sqrt(fan))


class Attention(nn.Module):
    """Causal multi-head attention without biases; scores / sqrt(d_head)."""

    def __init__(self, cfg: ModelConfig, gen: torch.Generator, name: str = "attn") -> None:
        super().__init__()
        h, d, e = cfg.n_heads, cfg.d_model, cfg.d_head
        # Creation order is the generator's draw order: changing it changes every seeded init.
        self.W_Q = _normal(gen, (h, d, e), d)  # [n_heads, d_model, d_head]
        self.W_K = _normal(gen, (h, d, e), d)
        self.W_V = _normal(gen, (h, d, e), d)
        self.W_O = _normal(gen, (h, e, d), d)  # [n_heads, d_head, d_model]
        self.scale = 1.0 / math.sqrt(e)
        self.name = name  # hook prefix, e.g. "blocks.0.attn"; a plain attribute, not in the state_dict

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        """x: residual stream [batch, pos, d_model] -> attention output [batch, pos, d_model]."""
        # q, k, v, z: [batch, pos, n_heads, d_head]; scores, pattern: [batch, n_heads, query_pos, key_pos]
        q = _hook(cache, f"{self.name}.hook_q", torch.einsum("bpd,hde->bphe", x, self.W_Q))
        k = _hook(cache, f"{self.name}.hook_k", torch.einsum("bpd,hde->bphe", x, self.W_K))
        v = _hook(cache, f"{self.name}.hook_v", torch.einsum("bpd,hde->bphe", x, self.W_V))
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) * self.scale
        n = x.shape[1]
        future = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)  # key after query
        scores = _hook(cache, f"{self.name}.hook_attn_scores", scores.masked_fill(future, float("-inf")))
        pattern = _hook(cache, f"{self.name}.hook_pattern", scores.softmax(dim=-1))
        z = _hook(cache, f"{self.name}.hook_z", torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O)


class MLP(nn.Module):
    """ReLU MLP with biases; d_in is d_model except for the mlp_only model's first block."""

    def __init__(self, cfg: ModelConfig, gen: torch.Generator, d_in: int | None = None, name: str = "mlp") -> None:
        super().__init__()
        d = cfg.d_model
        # W_in keeps the N(0,1)/sqrt(d_model) init of the model's definition (docs/metrics.md) even when d_in = 2 * d_model.
        self.W_in = _normal(gen, (d_in or d, cfg.d_mlp), d)  # [d_in, d_mlp]
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = _normal(gen, (cfg.d_mlp, d), d)  # [d_mlp, d_model]
        self.b_out = nn.Parameter(torch.zeros(d))
        self.name = name  # hook prefix, e.g. "blocks.0.mlp"

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        """x [..., d_in] -> [..., d_model]; hook_pre and hook_post are [..., d_mlp]."""
        pre = _hook(cache, f"{self.name}.hook_pre", x @ self.W_in + self.b_in)
        post = _hook(cache, f"{self.name}.hook_post", F.relu(pre))
        return post @ self.W_out + self.b_out


class Block(nn.Module):
    """resid_pre -> + attention -> resid_mid -> + MLP -> resid_post; attn_only / mlp_only drop a part."""

    def __init__(self, cfg: ModelConfig, gen: torch.Generator, layer: int) -> None:
        super().__init__()
        self.name = f"blocks.{layer}"
        self.attn = None if cfg.mlp_only else Attention(cfg, gen, f"{self.name}.attn")
        # mlp_only has no attention to bring a and b to '=', so its first MLP reads both positions at once.
        self.reads_pair = cfg.mlp_only and layer == 0
        d_in = 2 * cfg.d_model if self.reads_pair else None
        self.mlp = None if cfg.attn_only else MLP(cfg, gen, d_in, f"{self.name}.mlp")

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        """x: resid_pre [batch, pos, d_model] -> resid_post [batch, pos, d_model]."""
        x = _hook(cache, f"{self.name}.hook_resid_pre", x)
        if self.attn is not None:
            x = x + _hook(cache, f"{self.name}.hook_attn_out", self.attn(x, cache))
            if self.mlp is not None:
                x = _hook(cache, f"{self.name}.hook_resid_mid", x)
        if self.mlp is not None:
            x = x + _hook(cache, f"{self.name}.hook_mlp_out", self._mlp_out(x, cache))
        return _hook(cache, f"{self.name}.hook_resid_post", x)

    def _mlp_out(self, x: torch.Tensor, cache: Cache | None) -> torch.Tensor:
        """The MLP's write to the residual stream: x [batch, pos, d_model] -> [batch, pos, d_model]."""
        if not self.reads_pair:
            return self.mlp(x, cache)
        # mlp_only block 0: one MLP input per example, [x_a, x_b] [batch, 2 * d_model], written at '='.
        out = self.mlp(x[:, :2].flatten(1), cache)  # [batch, d_model]
        return torch.cat([torch.zeros_like(x[:, :-1]), out[:, None]], dim=1)


class Transformer(nn.Module):
    """Tokens `a b =` -> logits over the p answer classes at the last position.

    `mlp_only`: the first MLP reads the concatenation [W_E[a] + W_pos[0], W_E[b] + W_pos[1]] (W_in
    [2 * d_model, d_mlp]) and adds its output to the '=' position's residual stream; later MLP blocks read
    the stream as usual. `attn_only`: blocks without MLPs.
    """

    def __init__(self, cfg: ModelConfig, p: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(cfg.seed)
        self.cfg, self.p = cfg, p
        d_vocab, d = p + 1, cfg.d_model  # tokens 0..p-1 and '=' (id p)
        # Creation order is the generator's draw order: every seeded init (and so every run) depends on it.
        self.W_E = _normal(gen, (d_vocab, d), d)  # [d_vocab, d_model]
        self.W_pos = _normal(gen, (N_CTX, d), d)  # [n_ctx, d_model]
        self.blocks = nn.ModuleList(Block(cfg, gen, layer) for layer in range(cfg.n_layers))
        self.W_U = _normal(gen, (d, p), d_vocab)  # [d_model, d_vocab_out]

    def forward(self, tokens: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        """tokens [batch, pos] (a, b, '=') -> logits at the last position [batch, p].

        cache: if a dict, filled with every HOOK_SHAPES activation of this model.
        """
        embed = _hook(cache, "hook_embed", self.W_E[tokens])  # [batch, pos, d_model]
        pos_embed = _hook(cache, "hook_pos_embed", self.W_pos[: tokens.shape[1]].expand_as(embed))
        x = embed + pos_embed
        for block in self.blocks:
            x = block(x, cache)
        return x[:, -1] @ self.W_U  # only '=' predicts the answer


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with log-softmax in float64: logits [batch, p], labels [batch] -> scalar.

    float32 log-softmax floors near 1e-7 and distorts late-training log-loss curves (docs/metrics.md).
    """
    return F.cross_entropy(logits.to(torch.float64), labels)
