"""Access lines written past the logging machinery: the same JSON, every line written."""

from __future__ import annotations

import json
import logging
import os
import select
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from cli.access_lines import FLUSH_LINES, JsonAccessLines
from cli.logs import JsonFormatter
from core.access import Identity
from core.request_context import CURRENT, RequestContext
from core.request_spans import RequestSpan

MANIFEST = "/v2/{name}/manifests/{reference}"


@pytest.fixture
def access_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("moorage.access")
    level, disabled = logger.level, logger.disabled
    logger.setLevel(logging.INFO)
    logger.disabled = False
    yield logger
    logger.setLevel(level)
    logger.disabled = disabled


@pytest.fixture
def output(tmp_path: Path) -> Iterator[tuple[JsonAccessLines, Path]]:
    path = tmp_path / "stderr"
    with path.open("w", encoding="utf-8") as stream:
        lines = JsonAccessLines(stream, flush_seconds=3600)
        yield lines, path
        lines.close()


def _formatted(context: RequestContext, status: int, seconds: float, path: str, now: float) -> str:
    """What logging makes of the same access record (``api.observe.LoggedAccess``)."""
    record = logging.LogRecord(
        "moorage.access",
        logging.INFO,
        __file__,
        1,
        "%s %s %d",
        (context.method, path, status),
        None,
    )
    record.created = now
    record.__dict__.update(
        {"status": status, "duration_ms": round(seconds * 1000, 3), "path": path}
    )
    token = CURRENT.set(context)
    try:
        return JsonFormatter().format(record)
    finally:
        CURRENT.reset(token)


@pytest.mark.parametrize(
    ("request_id", "path", "notes", "seconds", "now"),
    [
        ("pull-1", "/v2/acme/app/manifests/v1", {}, 0.0012345, 1764779000.123456),
        (
            'id "with" \\ quotes\t',
            "/v2/ünïcode/app/manifests/läst",
            {"identity": Identity(subject="admin")},
            2.5,
            1764779059.9994,
        ),
        ("x", "/v2/a/b/manifests/\u2028\x01", {"attempted": "mallory"}, 0.0, 1764779000.0),
        ("y", "/v2/a/b/manifests/c", {}, 120.0004999, 1764779000.9996),
    ],
)
def test_a_line_is_what_the_json_formatter_writes(
    output: tuple[JsonAccessLines, Path],
    request_id: str,
    path: str,
    notes: dict[str, object],
    seconds: float,
    now: float,
) -> None:
    lines, _ = output
    context = RequestContext(request_id, MANIFEST, "GET", notes)
    expected = _formatted(context, 200, seconds, path, now)
    assert lines.line(context, 200, seconds, path, now) == expected + "\n"


def test_a_line_of_a_sampled_request_carries_its_trace_and_span_ids(
    output: tuple[JsonAccessLines, Path],
) -> None:
    lines, _ = output
    context = RequestContext("traced", MANIFEST, "HEAD", {})
    context.span = RequestSpan(
        "HEAD", MANIFEST, 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xF067AA0BA902B7, 0, False, "", 1
    )
    line = lines.line(context, 404, 0.5, "/v2/a/b/manifests/c", 1764779000.5)
    # The same ids as a log record of the request gets, where the span is not current.
    expected = _formatted(context, 404, 0.5, "/v2/a/b/manifests/c", 1764779000.5)
    assert line == expected + "\n"
    document = json.loads(line)
    assert document["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert document["span_id"] == "00f067aa0ba902b7"


def test_every_buffered_line_is_written_on_close(
    access_logger: logging.Logger, output: tuple[JsonAccessLines, Path]
) -> None:
    del access_logger
    lines, path = output
    context = RequestContext("r", MANIFEST, "GET", {})
    for number in range(FLUSH_LINES + 10):
        lines.write(context, 200, 0.001, f"/v2/a/b/manifests/{number}")
    lines.close()
    lines.write(context, 201, 0.001, "/v2/a/b/manifests/after-close")
    written = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]
    assert [d["path"] for d in written] == [
        *(f"/v2/a/b/manifests/{number}" for number in range(FLUSH_LINES + 10)),
        "/v2/a/b/manifests/after-close",
    ]
    assert {d["logger"] for d in written} == {"moorage.access"}


def test_nothing_is_written_while_the_access_logger_is_off(
    access_logger: logging.Logger, output: tuple[JsonAccessLines, Path]
) -> None:
    lines, path = output
    access_logger.disabled = True
    lines.write(RequestContext("r", MANIFEST, "GET", {}), 200, 0.001, "/v2/a/b/manifests/c")
    access_logger.disabled = False
    access_logger.setLevel(logging.WARNING)
    lines.write(RequestContext("r", MANIFEST, "GET", {}), 200, 0.001, "/v2/a/b/manifests/d")
    lines.close()
    assert path.read_text(encoding="utf-8") == ""


def test_writes_are_whole_lines_within_pipe_buf(
    access_logger: logging.Logger,
    output: tuple[JsonAccessLines, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    del access_logger
    lines, _ = output
    pieces: list[bytes] = []

    def write(fd: int, data: memoryview) -> int:
        del fd
        pieces.append(bytes(data))
        return len(data)

    monkeypatch.setattr(os, "write", write)
    context = RequestContext("r", MANIFEST, "GET", {})
    long_path = "/v2/a/b/manifests/" + "x" * (2 * select.PIPE_BUF)
    for number in range(40):
        lines.write(context, 200, 0.001, long_path if number == 20 else f"/v2/a/{number}")
    lines.flush()
    assert len(pieces) > 2
    assert all(piece.endswith(b"\n") for piece in pieces)
    assert all(len(piece) <= select.PIPE_BUF for piece in pieces if long_path.encode() not in piece)
    assert b"".join(pieces).count(b"\n") == 40


def test_a_forked_child_writes_none_of_its_parents_lines(
    access_logger: logging.Logger, output: tuple[JsonAccessLines, Path]
) -> None:
    del access_logger
    lines, path = output
    lines.write(RequestContext("parent", MANIFEST, "GET", {}), 200, 0.001, "/v2/a/b/manifests/p")
    pid = os.fork()
    if pid == 0:  # the child: write one line of its own and leave without cleanup
        lines.write(RequestContext("child", MANIFEST, "GET", {}), 200, 0.001, "/v2/a/b/c")
        lines.close()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lines.close()
    ids = [json.loads(t)["request_id"] for t in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids) == ["child", "parent"]


def test_a_line_names_the_requests_span_not_whatever_is_current(tmp_path: Path) -> None:
    """An unsampled request's line has no ids, even inside someone else's span."""
    with (tmp_path / "stderr").open("w", encoding="utf-8") as stream:
        lines = JsonAccessLines(stream)
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("GET /v2/"):
            line = lines.line(RequestContext("r", MANIFEST, "GET", {}), 200, 0.1, "/v2/", 1.5)
        lines.close()
    assert "trace_id" not in json.loads(line)
