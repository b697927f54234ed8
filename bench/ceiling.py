"""The most manifest reads a Python server can answer on this machine: a ceiling.

``python -m bench.ceiling [--seconds S] [--repeats R] [--workers W]`` serves one fixed
manifest from a bare ASGI app (no routing, no database, no authentication: the app
answers every request with the same headers and body) on granian, configured as
``moorage api`` runs it (uvloop, HTTP/1, ``W`` workers, by default Moorage's default
count), and loads it exactly as ``python -m bench`` loads the registries' manifest cases:
``wrk`` for GET and ``ab`` for HEAD, 32 connections (``bench.native_load``). It prints one
JSON line per repetition and method, then the medians.

Anything Moorage does for a manifest read (routing, the token, the database read, the
audit event, the access line, metrics) comes on top of what this app does, so no
configuration of Moorage on this server and this machine can answer more reads a second
than this: a target above it is out of reach for the stack, not for the code. The
figure is a ceiling for the server's part only; the load tool's own CPU is in it, as it
is in every case of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.native_load import LoadResult, run_read
from cli.main import DEFAULT_API_WORKERS
from tests.services.process import ManagedProcess, free_port, port_accepts, spawn

if TYPE_CHECKING:
    from collections.abc import Sequence

#: A manifest of the size the bench's small image has, and the headers Moorage sends.
APP = """
BODY = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",' + (
    b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,'
    b'"digest":"sha256:' + b"0" * 64 + b'"},"layers":[]}'
)
HEADERS = [
    (b"content-type", b"application/vnd.oci.image.manifest.v1+json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"docker-content-digest", b"sha256:" + b"1" * 64),
    (b"etag", b'"sha256:' + b"1" * 64 + b'"'),
    (b"docker-distribution-api-version", b"registry/2.0"),
]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    body = b"" if scope["method"] == "HEAD" else BODY
    await send({"type": "http.response.body", "body": body})
"""
CONNECTIONS = 32


def _serve(directory: Path, workers: int) -> tuple[ManagedProcess, str]:
    """Start granian with the bare app; it and the manifest URL it answers."""
    (directory / "bare_manifest_app.py").write_text(APP)
    port = free_port()
    command = [
        sys.executable, "-m", "granian",
        "--interface", "asgi",
        "--loop", "uvloop",
        "--http", "1",
        "--workers", str(workers),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--no-log",
        "bare_manifest_app:app",
    ]  # fmt: skip
    process = spawn(
        "granian (bare app)",
        command,
        log_path=directory / "granian.log",
        env={**os.environ, "PYTHONPATH": str(directory)},
        cwd=directory,
    )
    process.wait_until(lambda: port_accepts(port), timeout=30, what="listening")
    return process, f"http://127.0.0.1:{port}/v2/bench/manifest/manifests/latest"


def _load(url: str, method: str, seconds: float) -> LoadResult:
    headers = {"Authorization": "Bearer x", "Accept": "application/json"}
    return run_read(
        url, method=method, seconds=seconds, connections=CONNECTIONS, headers=headers
    ).check(method)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the ceiling; 0 when every request succeeded."""
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="each measured run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method")
    parser.add_argument("--workers", type=int, default=DEFAULT_API_WORKERS)
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {"GET": [], "HEAD": []}
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as scratch:
        process, url = _serve(Path(scratch), args.workers)
        try:
            for method in rates:
                _load(url, method, 1)
            for rep in range(args.repeats):
                for method, measured in rates.items():
                    result = _load(url, method, args.seconds)
                    measured.append(result.rate)
                    line: dict[str, Any] = {
                        "rep": rep,
                        "method": method,
                        "req_s": round(result.rate, 1),
                        "p50_ms": result.p50_ms,
                        "p99_ms": result.p99_ms,
                        "load": round(os.getloadavg()[0], 2),
                    }
                    print(json.dumps(line), flush=True)
        finally:
            process.stop()
    summary = {
        "ceiling": "bare ASGI app on granian",
        "workers": args.workers,
        **{
            f"{method.lower()}_req_s": round(statistics.median(r), 1) for method, r in rates.items()
        },
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
