"""Pure metrics on spectra, logits and per-evaluation series: FSD, Nanda's progress measures, run events,
offline run analysis. Import the submodules (fsd, progress, grokking, runs, forkfit, probe, keys); the
package itself imports nothing, so readers of run directories do not load torch.

Depends only on grokmon.fourier and grokmon.errors; knows nothing about the model, engine or UI.
"""
