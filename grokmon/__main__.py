"""`python -m grokmon` and the `grokmon` command. A stop signal during start-up (importing the CLI takes a
tenth of a second, torch seconds) ends grokmon with its exit status and one line, not a traceback; the CLI
then installs its own handling.
"""

import os
import signal
import sys

_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def _starting(signum: int, frame: object) -> None:
    os.write(2, b"grokmon: interrupted while starting; nothing was written\n")
    os._exit(_EXIT.get(signal.Signals(signum), 128 + signum))  # nothing to flush yet: no file is open


def entry() -> int:
    for s in _EXIT:
        signal.signal(s, _starting)
    from grokmon.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(entry())
