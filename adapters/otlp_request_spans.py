"""Request spans batched in the process and exported over OTLP/HTTP (protobuf) by a thread.

:class:`OtlpRequestSpans` is the API processes' :class:`~core.request_spans.RequestSpanSink`.
``add`` appends the span to a bounded queue (a sampled request pays that and nothing
else); a thread takes up to a batch's worth every schedule delay, or at once when a
batch is full, encodes it (``adapters.otlp_span_encoding``) and POSTs it to the
collector. It follows the OpenTelemetry SDK's batch span processor and OTLP/HTTP
exporter in what operators set (:meth:`ExportOptions.from_environment`):

- ``OTEL_BSP_SCHEDULE_DELAY`` (ms, 5000), ``OTEL_BSP_MAX_QUEUE_SIZE`` (2048),
  ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (512): a full queue drops new spans (counted, and
  logged at most once a minute), never blocks a request;
- ``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`` (seconds, 10), ``..._COMPRESSION`` (``gzip``,
  ``deflate`` or ``none``), ``..._HEADERS`` (``key=value,...``; the configured headers
  win), ``..._CERTIFICATE`` (CA bundle for ``https``), ``..._CLIENT_CERTIFICATE`` and
  ``..._CLIENT_KEY`` (mutual TLS).

Delivery is at most once: an answer of 429, 502, 503 or 504, or a failed connection, is
retried with backoff (a ``Retry-After`` in seconds is honoured) for up to the timeout's
worth of waiting, as OTLP/HTTP asks; other answers drop the batch. ``close`` sends what is
queued, within ``OTEL_BSP_EXPORT_TIMEOUT`` (ms, 30000).
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

from adapters.otlp_span_encoding import RequestSpanEncoder
from core.request_spans import RequestSpan

logger = logging.getLogger(__name__)

_RETRYABLE: Final = frozenset({429, 502, 503, 504})
_OK_FIRST: Final = 200
_OK_LAST: Final = 299
#: First backoff (seconds), doubled per retry.
_BACKOFF: Final = 0.5
#: Seconds between two log lines about dropped spans.
_DROP_LOG_SECONDS: Final = 60.0


def _number(environ: Mapping[str, str], names: tuple[str, ...], default: float) -> float:
    for name in names:
        raw = environ.get(name, "").strip()
        if raw:
            try:
                return float(raw)
            except ValueError:
                logger.warning("%s=%r is not a number; using %s", name, raw, default)
                return default
    return default


def _text(environ: Mapping[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return ""


def _both(suffix: str) -> tuple[str, str]:
    return (f"OTEL_EXPORTER_OTLP_TRACES_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}")


def parse_headers(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` (values percent-encoded, W3C baggage style), lower-case keys."""
    headers: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


@dataclass(frozen=True)
class ExportOptions:
    """How the spans are batched and sent."""

    endpoint: str
    headers: Mapping[str, str] = field(default_factory=dict)
    schedule_delay: float = 5.0
    max_queue: int = 2048
    max_batch: int = 512
    timeout: float = 10.0
    close_timeout: float = 30.0
    compression: str = "none"
    ca_file: str = ""
    client_certificate: str = ""
    client_key: str = ""

    @classmethod
    def from_environment(
        cls,
        endpoint: str,
        headers: Mapping[str, str],
        environ: Mapping[str, str] = os.environ,
    ) -> ExportOptions:
        """The options the ``OTEL_*`` variables set (see the module), ``headers`` on top."""
        merged = parse_headers(_text(environ, _both("HEADERS")))
        merged.update({key.lower(): value for key, value in headers.items()})
        compression = _text(environ, _both("COMPRESSION")).lower() or "none"
        if compression not in {"gzip", "deflate", "none"}:
            logger.warning("unsupported OTLP compression %r; sending uncompressed", compression)
            compression = "none"
        return cls(
            endpoint=endpoint,
            headers=merged,
            schedule_delay=_number(environ, ("OTEL_BSP_SCHEDULE_DELAY",), 5000) / 1000,
            max_queue=max(1, int(_number(environ, ("OTEL_BSP_MAX_QUEUE_SIZE",), 2048))),
            max_batch=max(1, int(_number(environ, ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",), 512))),
            timeout=_number(environ, _both("TIMEOUT"), 10),
            close_timeout=_number(environ, ("OTEL_BSP_EXPORT_TIMEOUT",), 30000) / 1000,
            compression=compression,
            ca_file=_text(environ, _both("CERTIFICATE")),
            client_certificate=_text(environ, _both("CLIENT_CERTIFICATE")),
            client_key=_text(environ, _both("CLIENT_KEY")),
        )


class OtlpPoster:
    """POSTs encoded batches to one OTLP/HTTP traces URL over a kept-alive connection."""

    def __init__(self, options: ExportOptions) -> None:
        url = urlsplit(options.endpoint)
        if url.scheme not in {"http", "https"} or not url.hostname:
            msg = f"the OTLP traces endpoint must be an http(s) URL, not {options.endpoint!r}"
            raise ValueError(msg)
        self._options = options
        self._secure = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._headers = {
            **options.headers,
            "content-type": "application/x-protobuf",
            "user-agent": "moorage-otlp",
        }
        if options.compression != "none":
            self._headers["content-encoding"] = options.compression
        self._context: ssl.SSLContext | None = None
        if self._secure:
            self._context = ssl.create_default_context(cafile=options.ca_file or None)
            if options.client_certificate:
                self._context.load_cert_chain(
                    options.client_certificate, options.client_key or None
                )
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            timeout = self._options.timeout
            if self._secure:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=self._context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=timeout
                )
        return self._connection

    def close(self) -> None:
        """Close the connection (a later ``post`` opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def post(self, body: bytes) -> tuple[int, float | None]:
        """Send one batch: the status (0: no answer) and a ``Retry-After`` in seconds."""
        if self._options.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
        elif self._options.compression == "deflate":
            body = zlib.compress(body)
        connection = self._connect()
        try:
            connection.request("POST", self._path, body, self._headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            logger.debug("OTLP export failed: %s", error)
            self.close()
            return 0, None
        retry_after = response.getheader("retry-after", "")
        if response.will_close:
            self.close()
        return response.status, float(retry_after) if retry_after.isdigit() else None


class OtlpRequestSpans:
    """Request spans queued in memory and exported over OTLP/HTTP by one thread."""

    def __init__(
        self,
        encoder: RequestSpanEncoder,
        options: ExportOptions,
        *,
        post: Callable[[bytes], tuple[int, float | None]] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Spans are encoded by ``encoder`` and sent as ``options`` say.

        ``post`` replaces the HTTP client and ``sleep`` the backoff wait (for tests).
        """
        self._encoder = encoder
        self._options = options
        self._poster: OtlpPoster | None = None
        if post is None:
            self._poster = OtlpPoster(options)
            post = self._poster.post
        self._post = post
        self._queue: deque[RequestSpan] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._sleep = sleep or self._closing.wait
        self.dropped = 0
        self.exported = 0
        self._dropped_logged = 0.0
        self._thread = threading.Thread(target=self._run, name="moorage-otlp-spans", daemon=True)
        self._thread.start()

    def add(self, span: RequestSpan, /) -> None:
        """Queue one span (dropped when the queue is full or the sink is closed)."""
        queue = self._queue
        if len(queue) >= self._options.max_queue or self._closing.is_set():
            self._drop()
            return
        queue.append(span)
        # NOTE: once per batch (every crossing of the batch size passes through it), not
        # on every span added while the thread has yet to take a full batch
        if len(queue) == self._options.max_batch:
            self._wake.set()

    def _drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._dropped_logged >= _DROP_LOG_SECONDS:
            self._dropped_logged = now
            logger.warning("request spans dropped (queue full or closed): %d so far", self.dropped)

    def close(self) -> None:
        """Send what is queued (within the close timeout), then stop the thread."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._wake.set()
        self._thread.join(self._options.close_timeout)
        if self._poster is not None:
            self._poster.close()

    def _run(self) -> None:
        try:
            while not self._closing.is_set():
                self._wake.wait(self._options.schedule_delay)
                self._wake.clear()
                self._export_queued()
            deadline = time.monotonic() + self._options.close_timeout
            self._export_queued(deadline)
        except Exception:
            logger.exception("the request span exporter stopped")

    def _export_queued(self, deadline: float | None = None) -> None:
        """Send the queue's spans in batches until it is (about) empty."""
        queue = self._queue
        while queue:
            if deadline is not None and time.monotonic() > deadline:
                return
            batch = [queue.popleft() for _ in range(min(len(queue), self._options.max_batch))]
            if self._send(self._encoder.encode(batch), deadline):
                self.exported += len(batch)
            if deadline is None and len(queue) < self._options.max_batch:
                return

    def _send(self, body: bytes, deadline: float | None) -> bool:
        """POST one batch, retrying what OTLP/HTTP says to retry; whether it was taken."""
        waited = 0.0
        backoff = _BACKOFF
        while True:
            status, retry_after = self._post(body)
            if _OK_FIRST <= status <= _OK_LAST:
                return True
            pause = retry_after if retry_after is not None else backoff
            too_late = deadline is not None and time.monotonic() + pause > deadline
            if (
                (status and status not in _RETRYABLE)
                or waited + pause > self._options.timeout
                or too_late
            ):
                logger.warning(
                    "OTLP export of %d bytes failed (status %s); dropped",
                    len(body),
                    status or "none",
                )
                return False
            self._sleep(pause)
            waited += pause
            backoff *= 2
