"""Pure metrics on spectra, logits and per-evaluation series: FSD, Nanda's progress measures, run events.

Depends only on grokmon.fourier and grokmon.errors; knows nothing about the model, engine or UI.
"""

from __future__ import annotations

from grokmon.metrics.fsd import FSDResult, fsd
from grokmon.metrics.grokking import (
    GrokTimes,
    OnlineCeilingDetector,
    crossing_step,
    excluded_loss_baseline,
    fsd_ceiling_offline,
    grok_times,
    lead,
    phase,
    sign_test,
)
from grokmon.metrics.progress import (
    excluded_loss,
    fourier_gini,
    gini,
    key_frequencies,
    restricted_loss,
    weight_norm,
)

__all__ = [
    "FSDResult", "GrokTimes", "OnlineCeilingDetector", "crossing_step", "excluded_loss",
    "excluded_loss_baseline", "fourier_gini", "fsd", "fsd_ceiling_offline", "gini", "grok_times",
    "key_frequencies", "lead", "phase", "restricted_loss", "sign_test", "weight_norm",
]
