"""Will a run fit? An estimate of the peak memory of training and evaluation from the config alone, checked
against what the device has before anything is allocated, so an impossible size is one line, not an
allocator traceback. Estimates, not measurements: they err on the large side by design.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grokmon.config import Config, n_pairs
from grokmon.errors import ConfigError

if TYPE_CHECKING:
    import torch

N_CTX = 3
HEADROOM = 0.8  # use at most this share of the available memory


def param_count(cfg: Config) -> int:
    """Parameters of the model the config describes (W_E, W_pos, blocks, W_U)."""
    m, p = cfg.model, cfg.task.p
    d = m.d_model
    count = (p + 1) * d + N_CTX * d + d * p
    for layer in range(m.n_layers):
        if not m.mlp_only:
            count += 4 * m.n_heads * d * m.d_head
        if not m.attn_only:
            d_in = 2 * d if (m.mlp_only and layer == 0) else d
            count += d_in * m.d_mlp + m.d_mlp + m.d_mlp * d + d
    return count


def estimate_bytes(cfg: Config) -> int:
    """Peak bytes of one training run: parameters with AdamW state and gradients, the dataset, and the larger
    of a training step and an evaluation over every pair (all positions, every activation kept, logits in
    float32 and their float64 copy for the loss)."""
    m = cfg.model
    pairs = n_pairs(cfg.task.op, cfg.task.p)
    n_train = int(cfg.task.frac_train * pairs)
    batch = min(cfg.train.batch_size, n_train) if cfg.train.batch_size else n_train
    per_example = N_CTX * m.n_layers * (6 * m.d_model + 3 * m.d_mlp + 3 * m.n_heads * m.d_head
                                        + 2 * m.n_heads * N_CTX) * 4 + cfg.task.p * (4 + 8 + 8)
    state = 4 * param_count(cfg) * 4  # weights, two AdamW moments, gradients (float32)
    data = pairs * (N_CTX + 1) * 8
    train = 2 * batch * per_example  # activations and their gradients
    evaluate = pairs * per_example
    return state + data + max(train, evaluate)


def available_bytes(device: "torch.device") -> int | None:
    """Free memory on the device (None when unknown): MemAvailable on Linux for the CPU, the CUDA allocator's
    free memory on a GPU."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(cfg: Config, device: "torch.device") -> None:
    """ConfigError naming the sizes when the estimate exceeds HEADROOM of the device's free memory."""
    need = estimate_bytes(cfg)
    have = available_bytes(device)
    if have is not None and need > HEADROOM * have:
        raise ConfigError(
            f"this run needs about {_gib(need)} on {device.type} (task.p {cfg.task.p}: {n_pairs(cfg.task.op, cfg.task.p):,} "
            f"pairs; model.d_model {cfg.model.d_model}, d_mlp {cfg.model.d_mlp}, {cfg.model.n_layers} layer(s)) "
            f"and {_gib(have)} is available; use a smaller task.p or model", source="config")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"
