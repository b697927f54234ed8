"""ASGI entry point for servers that import the app by name (``cli.asgi:app``).

Each server worker process calls the factory and so builds its own settings from the
environment and configuration file, and its own composition root. The app's framework
part (its routes and handlers, the same for every installation) is built once by the
process that forks the workers (:func:`prebuild_framework`, called by ``moorage api``
before its server starts them), so a forked worker only binds its registry to its copy;
a worker started any other way (uvicorn spawns new interpreters) builds its own.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Final

from adapters.config_file import load_settings
from api.app import MoorageApp, build_framework, create_app
from cli.heap import freeze_startup_heap
from cli.logs import configure_logging
from cli.tracing import configure_tracing, request_spans

if TYPE_CHECKING:
    from litestar import Litestar

#: Set by ``moorage api`` to its own PID before the server forks or spawns workers.
PARENT_PID_VARIABLE: Final = "MOORAGE_API_PARENT_PID"
_PR_SET_PDEATHSIG: Final = 1

_log = logging.getLogger("moorage.api")
#: The framework :func:`prebuild_framework` built in this process (or its parent's, when
#: forked from it); each worker takes its inherited copy once.
_prebuilt: MoorageApp | None = None


def _die_with_parent() -> None:
    """In a server worker process, ask Linux to SIGKILL it when ``moorage api`` dies.

    Without this a ``kill -9`` of the main process leaves its workers serving on the port.
    The main process stops its workers itself on an orderly shutdown, so this fires only
    when it crashed; SIGKILL because a graceful stop would wait for requests whose
    clients may never finish sending (an interrupted upload's bytes are cut back to its
    durable offset by the next writer anyway).
    """
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if sys.platform != "linux" or not parent or not parent.isdigit() or os.getpid() == int(parent):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def prebuild_framework() -> None:
    """Build the app's framework now, for the worker processes this process will fork.

    Called before the workers are forked; a second call keeps the first one's.
    """
    global _prebuilt  # noqa: PLW0603 - one per process, inherited by forked workers
    if _prebuilt is None:
        _prebuilt = build_framework()


def app() -> Litestar:
    """Build the Moorage HTTP application (the servers' ``factory`` target)."""
    global _prebuilt
    _die_with_parent()
    settings = load_settings()
    observability = settings.observability
    access_lines = configure_logging(observability.logs)
    configure_tracing(observability.tracing, "api")
    spans = request_spans(observability.tracing)
    framework, _prebuilt = _prebuilt, None
    built = create_app(
        settings, access_lines=access_lines, request_spans=spans, framework=framework
    )
    freeze_startup_heap()
    _log.info("API worker process %d built its app", os.getpid())
    return built
