"""The run directory's schema: its layout, the records in its files, readers and the writer.

    from grokmon.rundir import layout, records        # names and keys (no I/O)
    from grokmon.rundir.readers import read_rows, ...  # reading without locks, tolerant of half-written runs
    from grokmon.rundir.writer import RunDir           # the sink and checkpointer of one run
    from grokmon.rundir.control import ControlFile     # steering through control.jsonl
"""
