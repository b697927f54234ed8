"""A command for the fork server's tests: reports what it was started with.

``python -m tests.unit.services.forkserver_probe CODE [SECONDS]`` prints its arguments,
working directory, ``PROBE`` variable, session, ``__name__`` and standard input as one JSON
line, writes a
line to standard error, then sleeps ``SECONDS`` (default 0) and exits with ``CODE``. An
exit handler prints ``bye`` when the interpreter ends.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    atexit.register(print, "bye")
    print(
        json.dumps(
            {
                "argv": sys.argv[1:],
                "cwd": str(Path.cwd()),
                "probe": os.environ.get("PROBE"),
                "session_leader": os.getsid(0) == os.getpid(),
                "main": __name__,
                "stdin": sys.stdin.read(),
            }
        )
    )
    print("to stderr", file=sys.stderr)
    sys.stdout.flush()
    time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
    sys.exit(int(sys.argv[1]))
