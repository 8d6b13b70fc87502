"""`python -m grokmon` is the `grokmon` command."""

import sys

from grokmon.cli import main

sys.exit(main())
