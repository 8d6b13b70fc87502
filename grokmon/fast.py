"""The training kernel: `Transformer.forward`'s logits, computed only where the loss reads them.

Owns speed, not meaning: its contract is the float64 equality test in tests/test_model.py (logits and every
parameter's gradient equal the reference model's). Knows nothing about caches, hooks, optimisers or data.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from grokmon.model import MLP, Attention, Transformer

# Why it is fast (all of it is in the training step's forward and backward, on CPU above all):
# - Only the '=' position's residual stream after the last block is read, so the last block's query, its
#   MLP and the unembed run on that position alone.
# - Block 0's input at (pos, token) is W_E[token] + W_pos[pos]: n_ctx * d_vocab possible rows, far fewer
#   than batch * n_ctx. Its keys and values are tables over those rows, built once per call and gathered
#   per example. At '=' the query is a constant row, so block 0's scores there are lookups.
# - Gathers are F.embedding, not tensor[idx]: its backward is a dense scatter, several times faster on CPU
#   than the accumulate-index_put that advanced indexing falls back to.
# - Attention weights mix values in d_head space, then W_O is one matmul for the batch (mixing rows already
#   through W_O did 4x the elementwise work). The mix is broadcast-multiply-and-add, not einsum: those
#   einsums lower to a bmm over batch * n_heads tiny matrices whose backward loops per example on CPU
#   (~10x slower here).
# - Softmax over the 2-3 keys runs on a keys-first layout ([keys, batch, heads], dim 0): over a last dim of
#   size 3 torch's CPU kernel is ~4x slower, forward and backward.
# - MLP biases ride in addmm, and relu is in place on its output: two fewer passes over [batch, d_mlp].


def train_forward(model: Transformer) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training forward of `model`: tokens [batch, 3] (the last always '=') -> logits [batch, p].

    Equal to `model(tokens)`. The callable reads the parameters at each call, so it stays valid across
    optimiser steps and load_state_dict. The '=' column is assumed, not checked: a check would sync a GPU.
    """
    if model.cfg.mlp_only:
        kernel = _mlp_only
    elif model.cfg.n_layers == 1:
        kernel = _one_layer
    else:
        kernel = _deep

    def forward(tokens: torch.Tensor) -> torch.Tensor:
        return kernel(model, tokens)

    return forward


# -- the three kernels -----------------------------------------------------------------------------


def _one_layer(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """n_layers == 1: block 0 at '=' alone, then the unembed. tokens [batch, 3] -> logits [batch, p]."""
    a, b, eq = tokens[:, 0], tokens[:, 1], model.p
    block = model.blocks[0]
    emb = _embed_table(model)  # [n_ctx, d_vocab, d_model]
    x = emb[2, eq].expand(len(a), -1)  # [batch, d_model]
    if block.attn is not None:
        k_tab, v_tab = _layer0_tables(block.attn, emb)
        pattern = _layer0_pattern_at_eq(block.attn, emb, k_tab, a, b, eq)  # [3, batch, n_heads]
        z = _mix(pattern, (_gather(a, v_tab[0]), _gather(b, v_tab[1]), v_tab[2, eq]))  # [batch, n_heads, d_head]
        x = x + _through_w_o(block.attn, z)
    if block.mlp is not None:
        x = x + _mlp(block.mlp, x)
    return x @ model.W_U


def _deep(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """n_layers >= 2: block 0 from tables, middle blocks at every position, the last block's query and MLP
    at '=' only. tokens [batch, 3] -> logits [batch, p]."""
    x = _layer0_all_positions(model, tokens)  # [batch, pos, d_model]
    for block in model.blocks[1:-1]:
        if block.attn is not None:
            x = x + _attention(block.attn, x)
        if block.mlp is not None:
            x = x + _mlp(block.mlp, x)
    last = model.blocks[-1]
    x_eq = x[:, -1]  # [batch, d_model]
    if last.attn is not None:
        x_eq = x_eq + _attention_at_last(last.attn, x)
    if last.mlp is not None:
        x_eq = x_eq + _mlp(last.mlp, x_eq)
    return x_eq @ model.W_U


def _mlp_only(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """mlp_only: every block at '=' alone. tokens [batch, 3] -> logits [batch, p].

    Block 0 reads [x_a, x_b] and [x_a, x_b] @ W_in = x_a @ W_in[:d] + x_b @ W_in[d:], where x_a and x_b are
    embedding-table rows: two [d_vocab, d_mlp] tables gathered per example replace a [batch, 2 d] matmul.
    """
    a, b, eq = tokens[:, 0], tokens[:, 1], model.p
    emb = _embed_table(model)  # [n_ctx, d_vocab, d_model]
    first = model.blocks[0].mlp
    d = emb.shape[-1]
    pre = F.embedding(a, emb[0] @ first.W_in[:d]) + F.embedding(b, emb[1] @ first.W_in[d:])  # [batch, d_mlp]
    pre = pre + first.b_in
    x = emb[2, eq] + (F.relu(pre) @ first.W_out + first.b_out)  # [batch, d_model]
    for block in model.blocks[1:]:
        x = x + _mlp(block.mlp, x)
    return x @ model.W_U


# -- block 0 from tables over the vocabulary -------------------------------------------------------


def _embed_table(model: Transformer) -> torch.Tensor:
    """Block 0's possible inputs W_E[token] + W_pos[pos] for every (pos, token): [n_ctx, d_vocab, d_model]."""
    return model.W_E[None] + model.W_pos[:, None]


def _layer0_tables(attn: Attention, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Block 0's keys and values, one row per (pos, token) of emb [n_ctx, d_vocab, d_model]: each
    [n_ctx, d_vocab, n_heads, d_head]."""
    return _heads(emb, attn.W_K), _heads(emb, attn.W_V)


def _layer0_pattern_at_eq(attn: Attention, emb: torch.Tensor, k_tab: torch.Tensor, a: torch.Tensor,
                          b: torch.Tensor, eq: int) -> torch.Tensor:
    """Block 0's attention pattern at '=' over the keys a, b, '=': [3, batch, n_heads], keys first.

    The query is the constant '=' row, so every score is a lookup in a [n_ctx, d_vocab, n_heads] table.
    """
    q = _heads(emb[2, eq], attn.W_Q) * attn.scale  # [n_heads, d_head]
    score_tab = (k_tab * q).sum(-1)  # [n_ctx, d_vocab, n_heads]
    scores = torch.stack([F.embedding(a, score_tab[0]), F.embedding(b, score_tab[1]),
                          score_tab[2, eq].expand(len(a), -1)])
    return scores.softmax(dim=0)


def _layer0_all_positions(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """Block 0's output at every position: tokens [batch, 3] -> residual stream [batch, pos, d_model].

    Position 0 attends only to itself, so its whole block-0 output (attention and MLP) depends on token a
    alone: a [d_vocab, d_model] table, gathered per example. Position 1 mixes gathered rows for a and b;
    position 2 ('=') looks its scores up.
    """
    a, b, eq = tokens[:, 0], tokens[:, 1], model.p
    block = model.blocks[0]
    emb = _embed_table(model)  # [n_ctx, d_vocab, d_model]
    x0_tab = emb[0]  # [d_vocab, d_model]: position 0, by token a
    x1 = F.embedding(b, emb[1])  # [batch, d_model]
    x2 = emb[2, eq].expand(len(a), -1)
    if block.attn is not None:
        attn = block.attn
        k_tab, v_tab = _layer0_tables(attn, emb)
        x0_tab = x0_tab + _through_w_o(attn, v_tab[0])  # one key: its softmax weight is 1
        v_a, v_b = _gather(a, v_tab[0]), _gather(b, v_tab[1])  # [batch, n_heads, d_head], read at 1 and 2
        q1_tab = _heads(emb[1], attn.W_Q)  # [d_vocab, n_heads, d_head]: position 1's query, by token b
        s10 = (_gather(b, q1_tab) * _gather(a, k_tab[0])).sum(-1) * attn.scale  # [batch, n_heads]
        s11 = F.embedding(b, (q1_tab * k_tab[1]).sum(-1)) * attn.scale  # query and key both from b: a table
        p1 = torch.stack([s10, s11]).softmax(dim=0)  # [2, batch, n_heads]
        p2 = _layer0_pattern_at_eq(attn, emb, k_tab, a, b, eq)  # [3, batch, n_heads]
        z12 = torch.stack([_mix(p1, (v_a, v_b)), _mix(p2, (v_a, v_b, v_tab[2, eq]))])  # [2, batch, n_heads, d_head]
        out12 = _through_w_o(attn, z12)  # one matmul for both positions
        x1, x2 = x1 + out12[0], x2 + out12[1]
    if block.mlp is not None:
        x0_tab = x0_tab + _mlp(block.mlp, x0_tab)
        out12 = _mlp(block.mlp, torch.stack([x1, x2]))  # [2, batch, d_model]: one matmul for both positions
        x1, x2 = x1 + out12[0], x2 + out12[1]
    return torch.stack([F.embedding(a, x0_tab), x1, x2], dim=1)


# -- blocks after the first ------------------------------------------------------------------------


def _attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """Causal attention at every position: x [batch, pos, d_model] -> [batch, pos, d_model]."""
    q, k, v = _heads(x, attn.W_Q), _heads(x, attn.W_K), _heads(x, attn.W_V)  # [batch, pos, n_heads, d_head]
    scores = (q[:, :, None] * k[:, None]).sum(-1) * attn.scale  # [batch, query_pos, key_pos, n_heads]
    n = x.shape[1]
    future = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)[..., None]  # [query_pos, key_pos, 1]
    pattern = scores.masked_fill(future, float("-inf")).softmax(dim=2)
    z = (pattern[..., None] * v[:, None]).sum(2)  # [batch, query_pos, n_heads, d_head]
    return z.flatten(2) @ attn.W_O.flatten(0, 1)


def _attention_at_last(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """Attention at the last position only (its query sees every key, so no mask): x [batch, pos, d_model]
    -> [batch, d_model]."""
    q = _heads(x[:, -1], attn.W_Q)[:, None]  # [batch, 1, n_heads, d_head]
    k, v = _heads(x, attn.W_K), _heads(x, attn.W_V)  # [batch, pos, n_heads, d_head]
    pattern = ((q * k).sum(-1) * attn.scale).softmax(dim=1)  # [batch, pos, n_heads]
    z = (pattern[..., None] * v).sum(1)  # [batch, n_heads, d_head]
    return z.flatten(1) @ attn.W_O.flatten(0, 1)


def _mlp(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    """x [..., d_model] -> [..., d_model]: `MLP.forward` without its cache."""
    flat = x.reshape(-1, x.shape[-1])  # addmm is 2-D: the bias rides in the product instead of a pass of its own
    hidden = torch.addmm(mlp.b_in, flat, mlp.W_in).relu_()  # in place: relu's backward reads its output only
    return torch.addmm(mlp.b_out, hidden, mlp.W_out).view(*x.shape[:-1], -1)


# -- small pieces ----------------------------------------------------------------------------------


def _heads(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x [..., d_model] through w [n_heads, d_model, d_head] -> [..., n_heads, d_head], as one matmul with
    the heads side by side."""
    n_heads, d_model, d_head = w.shape
    return (x @ w.permute(1, 0, 2).reshape(d_model, n_heads * d_head)).unflatten(-1, (n_heads, d_head))


def _gather(idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rows idx [batch] of table [d_vocab, *rest] -> [batch, *rest], through F.embedding (2-D only)."""
    return F.embedding(idx, table.flatten(1)).view(len(idx), *table.shape[1:])


def _mix(weights: torch.Tensor, rows: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Attention weights [n_keys, batch, n_heads] times value rows, summed over keys -> [batch, n_heads, d_head].

    rows: one per key, [batch, n_heads, d_head] per example or [n_heads, d_head] shared by the batch. The mix
    stays in d_head space (W_O comes after, as one matmul): a quarter of the elementwise work of mixing
    rows already through W_O.
    """
    out = weights[0, ..., None] * rows[0]
    for i in range(1, len(rows)):
        out = out + weights[i, ..., None] * rows[i]
    return out


def _through_w_o(attn: Attention, z: torch.Tensor) -> torch.Tensor:
    """Per-head values z [..., n_heads, d_head] through W_O, summed over heads -> [..., d_model]."""
    return z.flatten(-2) @ attn.W_O.flatten(0, 1)
