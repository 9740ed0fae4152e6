"""Fault injection for the tests: run the ``pyro-aevb`` command line with every atomic write of a run directory
paused between writing its temporary file and renaming it into place, so that a kill lands inside a write.

    python tests/slow_writes.py SECONDS ARGS...      # as `pyro-aevb ARGS...`

Only this test process is slowed: ``os.replace`` of a ``.tmp`` file sleeps first (the library has no hook).
"""

import os
import sys
import time

from pyro_aevb.cli import main

_replace = os.replace


def slowed(pause: float):
    def replace(src, dst, *args, **kwargs):
        if str(src).endswith(".tmp"):
            time.sleep(pause)
        return _replace(src, dst, *args, **kwargs)

    return replace


if __name__ == "__main__":
    os.replace = slowed(float(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
