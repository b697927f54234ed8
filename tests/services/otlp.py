"""An OTLP/HTTP traces endpoint on loopback for tests and benchmarks.

``POST /v1/traces`` with an ``ExportTraceServiceRequest`` (protobuf, plain or with
``Content-Encoding: gzip``/``deflate``) is decoded and handed, with the request's headers
(lower-case names), to the receiver's callback; the answer is an empty
``ExportTraceServiceResponse``. Other paths get ``404``. Connections are kept alive.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.services.process import LOOPBACK

TRACES_PATH = "/v1/traces"
_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "": lambda body: body,
}

ExportHandler = Callable[[Mapping[str, str], ExportTraceServiceRequest], None]


class OtlpReceiver:
    """Serves until :meth:`close`; every export goes to ``on_export`` (from server threads)."""

    def __init__(self, on_export: ExportHandler) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                found = self.path == TRACES_PATH
                if found:
                    decode = _DECODERS[self.headers.get("Content-Encoding", "")]
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(decode(body))
                    headers = {key.lower(): value for key, value in self.headers.items()}
                    on_export(headers, request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                del args

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The traces URL to export to."""
        return f"http://{LOOPBACK}:{self.server.server_port}{TRACES_PATH}"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
