"""The grokking transformer (Nanda et al. 2023): no LayerNorm, learned positions, untied embed/unembed.

Owns the parameters (TransformerLens names and shapes) and two forwards that must agree: the plain
all-positions forward and the fast one. Knows nothing about data splits, optimisers or logging.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grokmon.config import ModelConfig

N_CTX = 3  # a, b, '='


def _normal(gen: torch.Generator, shape: tuple[int, ...], fan: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(shape, generator=gen) / math.sqrt(fan))


class Attention(nn.Module):
    """Causal multi-head attention without biases; scores / sqrt(d_head)."""

    def __init__(self, cfg: ModelConfig, gen: torch.Generator) -> None:
        super().__init__()
        h, d, e = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q = _normal(gen, (h, d, e), d)  # [n_heads, d_model, d_head]
        self.W_K = _normal(gen, (h, d, e), d)
        self.W_V = _normal(gen, (h, d, e), d)
        self.W_O = _normal(gen, (h, e, d), d)  # [n_heads, d_head, d_model]
        self.scale = 1.0 / math.sqrt(e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [batch, pos, d_model] -> attention output [batch, pos, d_model] (all positions)."""
        q = torch.einsum("bpd,hde->bhpe", x, self.W_Q)
        k = torch.einsum("bpd,hde->bhpe", x, self.W_K)
        v = torch.einsum("bpd,hde->bhpe", x, self.W_V)
        scores = torch.einsum("bhqe,bhke->bhqk", q, k) * self.scale
        n = x.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        z = torch.einsum("bhqk,bhke->bhqe", scores.softmax(dim=-1), v)
        return torch.einsum("bhqe,hed->bqd", z, self.W_O)

    def forward_last(self, x: torch.Tensor) -> torch.Tensor:
        """Only the last position's query: x [batch, pos, d_model] -> [batch, d_model].

        Written as matmuls on flattened heads plus elementwise mixing over the few positions: the
        einsum form lowers to bmm over batch * n_heads tiny matrices, which loops per example on CPU.
        """
        n_heads, d_model, d_head = self.W_Q.shape
        flat = lambda w: w.permute(1, 0, 2).reshape(d_model, n_heads * d_head)  # noqa: E731  [d_model, h*e]
        q = (x[:, -1] @ flat(self.W_Q)).view(-1, 1, n_heads, d_head)  # [batch, 1, n_heads, d_head]
        k = (x @ flat(self.W_K)).view(x.shape[0], x.shape[1], n_heads, d_head)  # [batch, pos, n_heads, d_head]
        v = (x @ flat(self.W_V)).view(x.shape[0], x.shape[1], n_heads, d_head)
        pattern = ((q * k).sum(-1) * self.scale).softmax(dim=1)  # [batch, pos, n_heads]
        z = (pattern[..., None] * v).sum(1)  # [batch, n_heads, d_head]
        return z.flatten(1) @ self.W_O.reshape(n_heads * d_head, d_model)


class MLP(nn.Module):
    """ReLU MLP with biases; d_in is d_model except for the mlp_only model's first block."""

    def __init__(self, cfg: ModelConfig, gen: torch.Generator, d_in: int | None = None) -> None:
        super().__init__()
        d = cfg.d_model
        # W_in keeps the N(0,1)/sqrt(d_model) init of SPEC section 1 even when d_in = 2 * d_model.
        self.W_in = _normal(gen, (d_in or d, cfg.d_mlp), d)  # [d_in, d_mlp]
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = _normal(gen, (cfg.d_mlp, d), d)  # [d_mlp, d_model]
        self.b_out = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., d_in] -> [..., d_model]."""
        return F.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, gen: torch.Generator, layer: int) -> None:
        super().__init__()
        self.attn = None if cfg.mlp_only else Attention(cfg, gen)
        d_in = 2 * cfg.d_model if (cfg.mlp_only and layer == 0) else None
        self.mlp = None if cfg.attn_only else MLP(cfg, gen, d_in)


class Transformer(nn.Module):
    """Tokens `a b =` -> logits over the p answer classes at the last position.

    `mlp_only`: there is no attention to move a and b to the last position, so the first MLP reads
    the concatenation [W_E[a] + W_pos[0], W_E[b] + W_pos[1]] (W_in [2 * d_model, d_mlp]) and adds its
    output to the '=' position's residual stream; later MLP blocks read that stream as usual.
    """

    def __init__(self, cfg: ModelConfig, p: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(cfg.seed)
        self.cfg, self.p = cfg, p
        d_vocab, d = p + 1, cfg.d_model
        self.W_E = _normal(gen, (d_vocab, d), d)  # [d_vocab, d_model]
        self.W_pos = _normal(gen, (N_CTX, d), d)  # [n_ctx, d_model]
        self.blocks = nn.ModuleList(Block(cfg, gen, layer) for layer in range(cfg.n_layers))
        self.W_U = _normal(gen, (d, p), d_vocab)  # [d_model, d_vocab_out]

    # -- plain -------------------------------------------------------------------------------

    def forward_plain(self, tokens: torch.Tensor, cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The reference forward: every block on every position. tokens [batch, 3] -> logits [batch, p]."""
        if self.cfg.mlp_only:
            return self._forward_mlp_only(tokens, cache)
        x = self.W_E[tokens] + self.W_pos  # [batch, pos, d_model]
        for layer, block in enumerate(self.blocks):
            if block.attn is not None:
                out = block.attn(x)
                _store(cache, f"blocks.{layer}.attn_out", out[:, -1])
                x = x + out
            if block.mlp is not None:
                out = block.mlp(x)
                _store(cache, f"blocks.{layer}.mlp_out", out[:, -1])
                x = x + out
        return x[:, -1] @ self.W_U

    # -- fast --------------------------------------------------------------------------------

    def forward(self, tokens: torch.Tensor, cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Equal to forward_plain, cheaper: tokens [batch, 3] (last always '=') -> logits [batch, p].

        Only the last position's output is read, so the last block's query, MLP and the unembed run
        on that position alone. Layer 0's inputs are token + position embeddings, so its queries,
        keys and values are tables over the d_vocab tokens, built once per call and gathered.
        """
        if self.cfg.mlp_only:
            return self._forward_mlp_only(tokens, cache)
        if self.cfg.n_layers == 1:
            x_last = self._layer0_last(tokens, cache)
        else:
            x = self._layer0_all(tokens, cache)
            n = len(self.blocks)
            for layer in range(1, n):
                block = self.blocks[layer]
                last = layer == n - 1
                if block.attn is not None:
                    out = block.attn.forward_last(x) if last else block.attn(x)
                    _store(cache, f"blocks.{layer}.attn_out", out if last else out[:, -1])
                    x = x[:, -1] + out if last else x + out
                elif last:
                    x = x[:, -1]
                if block.mlp is not None:
                    out = block.mlp(x)
                    _store(cache, f"blocks.{layer}.mlp_out", out if last else out[:, -1])
                    x = x + out
            x_last = x
        return x_last @ self.W_U

    def _tables(self, attn: Attention) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layer-0 q, k, v for every (position, token): each [n_ctx, d_vocab, n_heads, d_head]."""
        emb = self.W_E[None] + self.W_pos[:, None]  # [n_ctx, d_vocab, d_model]
        q = torch.einsum("pvd,hde->pvhe", emb, attn.W_Q)
        k = torch.einsum("pvd,hde->pvhe", emb, attn.W_K)
        v = torch.einsum("pvd,hde->pvhe", emb, attn.W_V)
        return q, k, v

    def _layer0_last(self, tokens: torch.Tensor, cache: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """One-layer model: the residual stream at the last position after block 0. -> [batch, d_model]"""
        a, b = tokens[:, 0], tokens[:, 1]
        eq = self.p  # the '=' token id: the last position's token is a constant
        block = self.blocks[0]
        x = (self.W_E[eq] + self.W_pos[2]).expand(tokens.shape[0], -1)  # [batch, d_model]
        if block.attn is not None:
            attn = block.attn
            n_heads, d_model = attn.W_O.shape[0], attn.W_O.shape[2]
            emb = self.W_E[None] + self.W_pos[:, None]  # [n_ctx, d_vocab, d_model]
            q = torch.einsum("d,hde->he", emb[2, eq], attn.W_Q) * attn.scale  # [n_heads, d_head]
            k = torch.einsum("pvd,hde->pvhe", emb, attn.W_K)
            score_tab = torch.einsum("pvhe,he->pvh", k, q)  # [n_ctx, d_vocab, n_heads]
            v = torch.einsum("pvd,hde->pvhe", emb, attn.W_V)
            ov_tab = torch.einsum("pvhe,hed->pvhd", v, attn.W_O).flatten(2)  # [n_ctx, d_vocab, n_heads*d_model]
            # F.embedding, not tensor[idx]: its backward is a dense scatter, several times faster on CPU
            # than the accumulate-index_put that advanced indexing falls back to.
            scores = torch.stack([
                F.embedding(a, score_tab[0]), F.embedding(b, score_tab[1]),
                score_tab[2, eq].expand(len(a), -1),
            ], dim=-1)  # [batch, n_heads, 3]
            pattern = scores.softmax(dim=-1)
            ov_a = F.embedding(a, ov_tab[0]).view(-1, n_heads, d_model)  # [batch, n_heads, d_model]
            ov_b = F.embedding(b, ov_tab[1]).view(-1, n_heads, d_model)
            ov_eq = ov_tab[2, eq].view(n_heads, d_model)
            # Broadcast-multiply and sum, not einsum: that einsum lowers to a bmm over `batch` tiny
            # matrices whose backward loops per example on CPU (~10x slower here).
            out = (
                (pattern[..., 0, None] * ov_a).sum(1)
                + (pattern[..., 1, None] * ov_b).sum(1)
                + pattern[..., 2] @ ov_eq
            )  # [batch, d_model]
            _store(cache, "blocks.0.attn_out", out)
            x = x + out
        if block.mlp is not None:
            out = block.mlp(x)
            _store(cache, "blocks.0.mlp_out", out)
            x = x + out
        return x

    def _layer0_all(self, tokens: torch.Tensor, cache: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Deeper models: the residual stream at every position after block 0. -> [batch, pos, d_model]

        Position 0 attends only to itself, so its whole block-0 output is a function of token a: a table
        over d_vocab rows, MLP included, gathered per example. Positions 1 and 2 mix gathered q/k/v rows.
        """
        a, b = tokens[:, 0], tokens[:, 1]
        eq = self.p
        block = self.blocks[0]
        emb = self.W_E[None] + self.W_pos[:, None]  # [n_ctx, d_vocab, d_model]
        x0_tab = emb[0]  # [d_vocab, d_model]
        x1 = F.embedding(b, emb[1])  # [batch, d_model]
        x2 = emb[2, eq].expand(len(a), -1)
        if block.attn is not None:
            attn = block.attn
            n_heads, d_head, d_model = attn.W_O.shape
            q_tab, k_tab, v_tab = self._tables(attn)  # [n_ctx, d_vocab, n_heads, d_head]
            ov_tab = torch.einsum("pvhe,hed->pvhd", v_tab, attn.W_O)  # [n_ctx, d_vocab, n_heads, d_model]
            gather = lambda idx, tab: F.embedding(idx, tab.flatten(1)).view(len(idx), *tab.shape[1:])  # noqa: E731
            mix = lambda pat, ov: (pat[..., None] * ov).sum(1)  # noqa: E731  [batch, n_heads]x[batch, n_heads, d] -> [batch, d]
            # position 0: softmax over one key is 1
            x0_tab = x0_tab + ov_tab[0].sum(1)
            # position 1: query from b, keys a and b
            q1 = gather(b, q_tab[1])  # [batch, n_heads, d_head]
            s10 = (q1 * gather(a, k_tab[0])).sum(-1) * attn.scale  # [batch, n_heads]
            s11 = F.embedding(b, (q_tab[1] * k_tab[1]).sum(-1)) * attn.scale
            p1 = torch.stack([s10, s11], dim=-1).softmax(dim=-1)
            x1 = x1 + mix(p1[..., 0], gather(a, ov_tab[0])) + mix(p1[..., 1], gather(b, ov_tab[1]))
            # position 2: the query is the constant '=' row, so every score is a table lookup
            q2 = q_tab[2, eq] * attn.scale  # [n_heads, d_head]
            score_tab = (k_tab * q2).sum(-1)  # [n_ctx, d_vocab, n_heads]
            p2 = torch.stack([F.embedding(a, score_tab[0]), F.embedding(b, score_tab[1]),
                              score_tab[2, eq].expand(len(a), -1)], dim=-1).softmax(dim=-1)
            out2 = (mix(p2[..., 0], gather(a, ov_tab[0])) + mix(p2[..., 1], gather(b, ov_tab[1]))
                    + p2[..., 2] @ ov_tab[2, eq])
            _store(cache, "blocks.0.attn_out", out2)
            x2 = x2 + out2
        if block.mlp is not None:
            x0_tab = x0_tab + block.mlp(x0_tab)
            out12 = block.mlp(torch.stack([x1, x2]))  # [2, batch, d_model]: one matmul for both positions
            _store(cache, "blocks.0.mlp_out", out12[1])
            x1, x2 = x1 + out12[0], x2 + out12[1]
        return torch.stack([F.embedding(a, x0_tab), x1, x2], dim=1)

    def _forward_mlp_only(self, tokens: torch.Tensor, cache: dict[str, torch.Tensor] | None) -> torch.Tensor:
        emb = self.W_E[tokens] + self.W_pos  # [batch, pos, d_model]
        x = emb[:, 2]
        for layer, block in enumerate(self.blocks):
            inp = emb[:, :2].flatten(1) if layer == 0 else x  # [batch, 2 * d_model] for block 0
            out = block.mlp(inp)
            _store(cache, f"blocks.{layer}.mlp_out", out)
            x = x + out
        return x @ self.W_U


def _store(cache: dict[str, torch.Tensor] | None, name: str, value: torch.Tensor) -> None:
    if cache is not None:
        cache[name] = value


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with log-softmax in float64: logits [batch, p], labels [batch] -> scalar.

    float32 log-softmax floors near 1e-7 and distorts late-training log-loss curves (SPEC section 1).
    """
    return F.cross_entropy(logits.to(torch.float64), labels)
