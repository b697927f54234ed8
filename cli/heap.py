"""The start-up heap of a long-running process, kept out of the garbage collector's way.

A Moorage process imports its modules and builds its app or worker once: about 250,000
objects that live as long as the process. Python's full (oldest-generation) collection
walks every tracked object each time it runs, so each one over that heap costs a tenth of a
second of CPU or more, and the first ones come while a server worker builds its app. Each
write of the collector to an object's header also copies, in a worker forked from the API
process, the page that held it, so memory the workers could share becomes their own.

:func:`freeze_startup_heap` collects once, then moves every object alive into the
collector's permanent generation (:func:`gc.freeze`), which later collections skip. It is
called where a process has finished building what it keeps: the API process before its
server forks the workers, each worker once its app is built, the Temporal worker process
before it starts polling. Nothing is lost by it: garbage made afterwards is collected as
before, and objects frozen here that later become garbage are freed by reference counting
as usual; only a reference cycle among them would stay (none is made at start-up on
purpose, and such a cycle would have outlived the first full collection anyway).
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect the start-up garbage, then exempt what is left from later collections.

    Safe to call more than once: each call freezes what was built since the last one.
    """
    gc.collect()
    gc.freeze()
