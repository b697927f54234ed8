"""Log lines of every Moorage process: one JSON object per line, or a console format.

Each line carries its time (UTC, ISO 8601), level, logger and message and, when written
for an HTTP request, the request's id, route template, method and caller
(``core.request_context``) and the current trace and span ids (OpenTelemetry). An error
carries its exception's type, message and stack. Access lines (logger
``moorage.access``) add ``status``, ``duration_ms`` and ``path``.

The servers' own loggers (uvicorn, granian) are routed through the same handler. Access
lines in JSON skip the logging machinery (``cli.access_lines``): :func:`configure_logging`
returns their writer for the app.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

from opentelemetry import trace

from cli.access_lines import JsonAccessLines
from core.observability_settings import LogSettings
from core.request_context import CURRENT

#: Attributes an access line adds to a record (``api.observe``).
_EXTRAS: Final = ("status", "duration_ms", "path")
#: Loggers of the HTTP client library, which writes a record per request at INFO.
_CLIENT_LOGGERS: Final = ("httpx",)
#: The server loggers sent to the root handler instead of their own.
_SERVER_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "_granian",
    "granian.access",
)


def _context(record: logging.LogRecord) -> dict[str, Any]:
    """The request, trace and access fields of ``record``."""
    fields: dict[str, Any] = {}
    request = CURRENT.get()
    if request is not None:
        fields["request_id"] = request.request_id
        fields["route"] = request.route
        fields["method"] = request.method
        principal = request.principal
        if principal:
            fields["principal"] = principal
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    elif request is not None and request.span is not None:  # not made current (``/v2``)
        fields["trace_id"] = format(request.span.trace_id, "032x")
        fields["span_id"] = format(request.span.span_id, "016x")
    for name in _EXTRAS:
        value = record.__dict__.get(name)
        if value is not None:
            fields[name] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            document["error"] = {
                "type": type(error).__name__,
                "message": str(error),
                "stack": self.formatException(record.exc_info),
            }
        elif record.stack_info:
            document["stack"] = record.stack_info
        return json.dumps(document, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """A line for people: ``time level logger message key=value...`` and the stack."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{key}={value}" for key, value in _context(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line}  [{fields}]"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(
    settings: LogSettings,
    *,
    default_format: Literal["json", "console"] = "json",
    replace: bool = True,
) -> JsonAccessLines | None:
    """Send every log record of the process to stderr in the configured format.

    Args:
        settings: Format, level and access log.
        default_format: The format when ``settings.format`` is unset.
        replace: Replace handlers already installed; ``False`` leaves a configured
            process (an embedding program, a test runner) as it is.

    Returns:
        The writer of JSON access lines on the same stderr, for the app
        (``api.app.create_app``); ``None`` when access lines are to be logged as records
        (console format, no file descriptor, or handlers left as they were).
    """
    root = logging.getLogger()
    if root.handlers and not replace:
        return None
    handler = logging.StreamHandler(sys.stderr)
    chosen = settings.format or default_format
    handler.setFormatter(JsonFormatter() if chosen == "json" else ConsoleFormatter())
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    logging.getLogger("moorage.access").disabled = not settings.access
    # NOTE: the HTTP client's line per outbound request (each replicated chunk, each
    # webhook) is debugging detail: below DEBUG only its warnings and errors are kept
    client_level = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for name in _CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(client_level)
    if chosen != "json":
        return None
    try:
        return JsonAccessLines(sys.stderr)
    except (AttributeError, OSError, ValueError):  # NOTE: io.UnsupportedOperation is an OSError
        return None


def quiet_native_grpc() -> None:
    """Keep gRPC's C core from writing its own (non-JSON) lines to stderr.

    Only errors are printed, and no fork handlers run: the API's health server lives in
    the main process only, its forked server workers never use gRPC. Effective when
    called before ``grpc`` is imported; explicit environment settings win.
    """
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


#: Granian's logging configuration: its loggers go to the root handler set above.
GRANIAN_LOGGING: Final[dict[str, Any]] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {},
    "handlers": {},
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    },
}
