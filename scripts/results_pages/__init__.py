"""The results pages' collect and render code: per experiment a collect module (run directories -> JSON) and a
render module (JSON -> page), or one module when both are small; scripts/results.py is the entry point (the
command line) and the only caller."""
