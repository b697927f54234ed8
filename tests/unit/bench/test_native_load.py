"""The manifest cases' native load (``wrk``, ``ab``) against a counting loopback server.

The server counts every request it answers by method and path and keeps the bodies, so
each test can compare what the tool reported with what actually arrived.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import pytest

from bench.cases import Context, ManifestPut, ManifestRead, Scale, Side
from bench.client import OCI_MANIFEST, Target
from bench.native_load import LoadError, parse_ab, parse_wrk, run_ab, run_wrk
from bench.payloads import PayloadFactory

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from bench.client import RegistryClient

BODY = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
SECONDS = 1.0


@dataclass
class Counting:
    """What the server saw and how it answers."""

    status: int = 200
    seen: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: set[bytes] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Http(asyncio.Protocol):
    """HTTP/1.0 and 1.1 with keep-alive and ``Content-Length`` bodies; nothing else."""

    def __init__(self, state: Counting) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._answer_one():
            pass

    def _answer_one(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        method, path, version = lines[0].split(" ")
        state = self.state
        with state.lock:
            state.seen[method, path] += 1
            if len(state.headers) < 5:
                state.headers.append(headers)
            if body:
                state.bodies.add(body)
        keep = version == "HTTP/1.1" or headers.get("connection", "").lower() == "keep-alive"
        answer = BODY if method == "GET" else b""
        # NOTE: a HEAD answer announces the GET's length and sends no body
        length = len(BODY) if method == "HEAD" else len(answer)
        head = (
            f"{version} {state.status} X\r\nContent-Length: {length}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        ).encode()
        assert self.transport is not None
        self.transport.write(head + answer)
        if not keep:
            self.transport.close()
        return True


@pytest.fixture
def server() -> Iterator[tuple[str, Counting]]:
    state = Counting()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def start() -> None:
        holder["server"] = await loop.create_server(lambda: _Http(state), "127.0.0.1", 0)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    ready.wait(10)
    port = holder["server"].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:

        async def stop() -> None:
            holder["server"].close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_wrk_gets_count_what_the_server_answered(server: tuple[str, Counting]) -> None:
    url, state = server
    result = run_wrk(
        f"{url}/v2/r/manifests/latest",
        seconds=SECONDS,
        connections=4,
        headers={"Authorization": "Bearer t0k3n", "Accept": "application/json"},
    ).check("get")
    answered = state.seen["GET", "/v2/r/manifests/latest"]
    assert result.requests > 0
    # NOTE: requests in flight when the run ends reach the server but are not counted
    assert result.requests <= answered <= result.requests + 4
    assert set(state.seen) == {("GET", "/v2/r/manifests/latest")}
    assert state.headers[0]["authorization"] == "Bearer t0k3n"
    assert result.rate == pytest.approx(result.requests / result.seconds)
    assert 0 < result.p50_ms <= result.p99_ms


def test_wrk_puts_go_to_a_new_path_each_with_the_body(server: tuple[str, Counting]) -> None:
    url, state = server
    state.status = 201
    result = run_wrk(
        f"{url}/v2/r/manifests/x",
        seconds=SECONDS,
        connections=3,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        method="PUT",
        body=BODY,
        unique_path_prefix="/v2/r/manifests/r0-run-",
        expect_status=201,
    ).check("put")
    paths = [path for method, path in state.seen if method == "PUT"]
    assert len(paths) >= result.requests
    assert all(count == 1 for count in state.seen.values()), "a path was put twice"
    assert all(path.startswith("/v2/r/manifests/r0-run-1-") for path in paths)
    assert state.bodies == {BODY}


def test_wrk_counts_answers_of_another_status_as_errors(server: tuple[str, Counting]) -> None:
    url, state = server
    state.status = 200
    result = run_wrk(
        f"{url}/v2/r/manifests/x",
        seconds=SECONDS,
        connections=2,
        headers={},
        method="PUT",
        body=BODY,
        unique_path_prefix="/v2/r/manifests/p-",
        expect_status=201,
    )
    assert result.errors["unexpected"] == result.requests > 0
    with pytest.raises(LoadError, match="unexpected"):
        result.check("put")


def test_wrk_counts_error_statuses(server: tuple[str, Counting]) -> None:
    url, state = server
    state.status = 404
    result = run_wrk(f"{url}/v2/r/manifests/gone", seconds=SECONDS, connections=2, headers={})
    assert result.errors["status"] == result.requests > 0
    with pytest.raises(LoadError, match="status"):
        result.check("get")


def test_wrk_refuses_head() -> None:
    with pytest.raises(LoadError, match="HEAD"):
        run_wrk("http://127.0.0.1:9/", seconds=1, connections=1, headers={}, method="HEAD")


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_ab_loads_heads_and_gets_on_kept_alive_connections(
    server: tuple[str, Counting], method: str
) -> None:
    url, state = server
    result = run_ab(
        f"{url}/v2/r/manifests/sha256:abc",
        seconds=SECONDS,
        connections=4,
        headers={"Authorization": "Bearer t0k3n"},
        method=method,
    ).check(method)
    answered = state.seen[method, "/v2/r/manifests/sha256:abc"]
    assert result.requests > 0
    assert result.requests <= answered <= result.requests + 4
    assert set(state.seen) == {(method, "/v2/r/manifests/sha256:abc")}
    assert state.headers[0]["authorization"] == "Bearer t0k3n"
    assert state.headers[0]["connection"].lower() == "keep-alive"
    assert 0 <= result.p50_ms <= result.p99_ms


def test_ab_counts_error_statuses(server: tuple[str, Counting]) -> None:
    url, state = server
    state.status = 404
    result = run_ab(f"{url}/gone", seconds=SECONDS, connections=2, headers={}, method="HEAD")
    assert result.errors["status"] == result.requests > 0
    with pytest.raises(LoadError, match="status"):
        result.check("head")


def test_results_are_read_from_the_tools_output() -> None:
    wrk = parse_wrk(
        "Running 5s test\nWRK_RESULT "
        '{"requests":1000,"duration_us":2000000,"p50_us":1500,"p99_us":9000,'
        '"connect":0,"read":1,"write":0,"status":2,"timeout":0,"unexpected":3}\n'
    )
    assert (wrk.requests, wrk.seconds, wrk.rate, wrk.p50_ms, wrk.p99_ms) == (
        1000,
        2.0,
        500.0,
        1.5,
        9.0,
    )
    assert wrk.errors == {
        "connect": 0,
        "read": 1,
        "write": 0,
        "status": 2,
        "timeout": 0,
        "unexpected": 3,
    }
    csv = "Percentage served,Time in ms\n" + "".join(f"{p},{p / 10}\n" for p in range(101))
    ab = parse_ab(
        "Complete requests:      800\nFailed requests:        0\n"
        "Time taken for tests:   4.000 seconds\nNon-2xx responses:      5\n",
        csv,
    )
    assert (ab.requests, ab.rate, ab.p50_ms, ab.p99_ms) == (800, 200.0, 5.0, 9.9)
    assert ab.errors == {"failed": 0, "status": 5}
    with pytest.raises(LoadError, match="no result"):
        parse_wrk("wrk: connection refused\n")


class _Client:
    """What the manifest cases read from a side's client when the load is native."""

    def __init__(self, base: str) -> None:
        self.base = base

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": "Bearer t", **(extra or {})}


def _side(url: str) -> Side:
    side = Side(Target("moorage", url, None), cast("RegistryClient", _Client(url)))
    side.state["manifest-digest"] = "sha256:" + "a" * 64
    return side


def _context(tmp_path: Path) -> Context:
    scale = Scale(duration_s=1.0, warmup_s=0.5)
    return Context(scale=scale, payloads=PayloadFactory(1024), workdir=tmp_path)


@pytest.mark.parametrize(("method", "by_digest"), [("HEAD", True), ("GET", False)])
def test_a_manifest_read_case_loads_its_manifest_natively(
    server: tuple[str, Counting], tmp_path: Path, method: str, by_digest: bool
) -> None:
    url, state = server
    case = ManifestRead("read", method=method, by_digest=by_digest, concurrency=3)
    measured = asyncio.run(case.measure(_context(tmp_path), _side(url), 0))
    reference = "sha256:" + "a" * 64 if by_digest else "latest"
    assert set(state.seen) == {(method, f"/v2/{case.repo}/manifests/{reference}")}
    # NOTE: the warm-up's requests reach the server but are not measured
    assert 0 < measured.extra["requests"] < sum(state.seen.values())
    assert measured.value > 0
    assert state.headers[0]["accept"].startswith("application/")


def test_a_manifest_put_case_puts_every_request_to_a_new_tag(
    server: tuple[str, Counting], tmp_path: Path
) -> None:
    url, state = server
    state.status = 201
    case = ManifestPut("put", concurrency=4)
    side = _side(url)
    side.state["put-manifest"] = BODY
    measured = asyncio.run(case.measure(_context(tmp_path), side, 2))
    paths = [path for method, path in state.seen if method == "PUT"]
    assert all(count == 1 for count in state.seen.values()), "a tag was put twice"
    prefix = f"/v2/{case.repo}/manifests/r2-"
    assert {path.removeprefix(prefix).split("-")[0] for path in paths} == {"warm", "run"}
    assert 0 < measured.extra["requests"] <= len(paths)
    assert state.bodies == {BODY}
    assert state.headers[0]["content-type"] == OCI_MANIFEST
