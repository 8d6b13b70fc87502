"""The keys the Fourier probe adds to a metrics row, declared once (the run directory's schema,
grokmon.rundir.records, takes them from here). Pure: no torch, nothing else."""

from __future__ import annotations

PROBE_KEYS = ("fsd", "fsd_p", "fsd_z", "fsd_sync", "top_freqs", "wl_top_freqs", "key_freqs", "restricted_loss",
              "excluded_loss", "gini_embed", "gini_wl", "weight_norm", "phase")
