"""The results pages' collect and render code, one experiment a module; scripts/results.py is the entry point
(the command line) and the only caller."""
