"""Request ids made by the registry: well formed, distinct, and distinct across a fork."""

from __future__ import annotations

import os
import re
import threading
from typing import Any, cast

from api.audit_middleware import header_of, request_headers, request_id_of
from api.request_ids import new_request_id


def _scope(headers: list[tuple[bytes, bytes]]) -> Any:
    return cast(Any, {"type": "http", "headers": headers})


_SHAPE = re.compile(r"^[0-9a-f]{32}$")


def test_ids_are_32_hex_digits_and_never_repeat_across_threads() -> None:
    seen: list[str] = []

    def take() -> None:
        seen.extend(new_request_id() for _ in range(2000))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8000
    assert len(set(seen)) == 8000
    assert all(_SHAPE.match(one) for one in seen)


def test_a_forked_worker_draws_ids_of_its_own() -> None:
    before = new_request_id()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    in_child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(child, 0)
    after = new_request_id()
    assert _SHAPE.match(in_child)
    assert in_child[:16] != before[:16]
    assert after[:16] == before[:16]
    assert in_child != after


def test_a_well_formed_client_id_is_kept_and_a_bad_one_replaced() -> None:
    kept = request_id_of(_scope([(b"x-request-id", b"ci-run-42.step_3")]))
    assert kept == "ci-run-42.step_3"
    replaced = request_id_of(_scope([(b"x-request-id", b"bad id; drop table")]))
    assert _SHAPE.match(replaced)
    missing = request_id_of(_scope([]))
    assert _SHAPE.match(missing)
    assert missing != replaced


def test_the_pipeline_reads_id_credentials_and_agent_as_the_single_lookups_do() -> None:
    headers = [
        (b"Host", b"registry"),
        (b"User-Agent", b"skopeo/1.18"),
        (b"authorization", b"Bearer first"),
        (b"x-request-id", b"ci-7"),
        (b"authorization", b"Bearer second"),
        (b"user-agent", b"other"),
    ]
    scope = _scope(headers)
    assert request_headers(scope) == (
        "ci-7",
        header_of(scope, b"authorization"),
        header_of(scope, b"user-agent"),
    )
    assert request_headers(scope)[1:] == ("Bearer first", "skopeo/1.18")
    made, authorization, agent = request_headers(_scope([(b"x-request-id", b"no spaces")]))
    assert _SHAPE.match(made)
    assert (authorization, agent) == ("", "")
