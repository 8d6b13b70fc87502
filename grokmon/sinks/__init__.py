"""Sinks: consumers of engine events (the run directory, the console; the TUI is another)."""
