"""Chunked uploads continued by other API processes: the running hash travels in the upload's row.

Two more apps on the same database and blob store stand for two more API processes; each
counts the bytes it re-reads in ``moorage_upload_rehash_bytes_total``. A state that does
not match the upload's committed bytes is never continued, and a digest computed from a
state is confirmed by re-reading before an upload is refused.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy
from litestar.testing import TestClient

from adapters import openssl_sha256
from api.app import create_app
from core.settings import Settings
from tests.api.oci import OCIClient, digest_of

_SAMPLE = re.compile(r'^moorage_upload_rehash_bytes_total\{reason="(\w+)"\} (\S+)$', re.MULTILINE)
_RESUMABLE = re.compile(r"^moorage_upload_hash_resumable (\S+)$", re.MULTILINE)
#: Where ``h[0]`` and ``Nl`` (the bit count's low word) sit in an exported state.
_H0_AT = len(openssl_sha256._TAG)
_NL_AT = _H0_AT + 32

Apps = tuple[OCIClient, OCIClient]


@pytest.fixture(scope="module")
def apps(app_settings: Settings, oci: OCIClient) -> Iterator[Apps]:
    """Two API "processes" besides ``oci`` on its database and blob store."""
    with TestClient(create_app(app_settings)) as first, TestClient(create_app(app_settings)) as b:
        yield OCIClient(first, oci.password), OCIClient(b, oci.password)


@pytest.fixture(scope="module")
def engine(app_settings: Settings) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(app_settings.resolved_database_url)
    yield engine
    engine.dispose()


def _rehashed(oci: OCIClient) -> dict[str, float]:
    """This app's re-read bytes by reason."""
    text = oci.client.get("/metrics").text
    return {reason: float(value) for reason, value in _SAMPLE.findall(text)}


def _delta(before: dict[str, float], oci: OCIClient) -> dict[str, float]:
    after = _rehashed(oci)
    return {reason: after[reason] - before.get(reason, 0.0) for reason in after}


def _start(oci: OCIClient, repo: str) -> str:
    started = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo)
    assert started.status_code == 202, started.text
    return started.headers["location"]


def _patch(oci: OCIClient, repo: str, location: str, data: bytes, offset: int) -> str:
    end = offset + len(data) - 1
    patched = oci.request(
        "PATCH", location, repo, content=data, headers={"Content-Range": f"{offset}-{end}"}
    )
    assert patched.status_code == 202, patched.text
    assert patched.headers["range"] == f"0-{end}"
    return patched.headers["location"]


def _upload_id(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


def _open_uploads(engine: sqlalchemy.Engine, upload_id: str) -> int:
    query = sqlalchemy.text("SELECT count(*) FROM upload WHERE id = :id")
    with engine.connect() as connection:
        return int(connection.execute(query, {"id": upload_id}).scalar_one())


def test_chunks_alternating_between_processes_are_hashed_once(
    apps: Apps, oci: OCIClient, repo: str, engine: sqlalchemy.Engine
) -> None:
    processes = (oci, *apps)
    before = [_rehashed(app) for app in processes]
    chunks = [os.urandom(size) for size in (300_001, 64, 1, 200_000, 65_599)]
    data = b"".join(chunks)
    location, offset = _start(oci, repo), 0
    for number, chunk in enumerate(chunks):
        location = _patch(processes[number % 3], repo, location, chunk, offset)
        offset += len(chunk)
    done = apps[1].request("PUT", f"{location}?digest={digest_of(data)}", repo)
    assert done.status_code == 201, done.text
    assert oci.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}", repo).content == data
    assert [_delta(seen, app) for seen, app in zip(before, processes, strict=True)] == [
        {"no_state": 0, "algorithm": 0, "mismatch": 0}
    ] * 3
    assert _open_uploads(engine, _upload_id(location)) == 0


def _tampered(
    engine: sqlalchemy.Engine, upload_id: str, change: Callable[[int, bytes], tuple[int, bytes]]
) -> None:
    with engine.begin() as connection:
        offset, state = connection.execute(
            sqlalchemy.text("SELECT hash_offset, hash_state FROM upload WHERE id = :id"),
            {"id": upload_id},
        ).one()
        assert offset is not None
        assert state is not None
        new_offset, new_state = change(int(offset), bytes(state))
        connection.execute(
            sqlalchemy.text("UPDATE upload SET hash_offset = :o, hash_state = :s WHERE id = :id"),
            {"o": new_offset, "s": new_state, "id": upload_id},
        )


def _word(state: bytes, at: int, value: int) -> bytes:
    return state[:at] + struct.pack("=I", value) + state[at + 4 :]


TAMPERING: dict[str, tuple[Callable[[int, bytes], tuple[int, bytes]], str]] = {
    # saved for another offset (a chunk that never committed, or an older one)
    "stale offset": (lambda offset, state: (offset - 1, state), "no_state"),
    # cut short, as a torn write would leave it
    "torn state": (lambda offset, state: (offset, state[: len(state) // 2]), "no_state"),
    # claims another length inside the state
    "other length inside": (
        lambda offset, state: (offset, _word(state, _NL_AT, 8 * (offset - 1))),
        "no_state",
    ),
    # right length, other bytes: the digest disagrees, the bytes are re-read to be sure
    "other bytes": (lambda offset, state: (offset, _word(state, _H0_AT, 0)), "mismatch"),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_a_state_that_does_not_match_is_not_trusted(
    apps: Apps, repo: str, engine: sqlalchemy.Engine, case: str
) -> None:
    change, reason = TAMPERING[case]
    first, second = apps
    data = os.urandom(333_333)
    location = _patch(first, repo, _start(first, repo), data, 0)
    _tampered(engine, _upload_id(location), change)
    before = _rehashed(second)
    done = second.request("PUT", f"{location}?digest={digest_of(data)}", repo)
    assert done.status_code == 201, done.text
    assert done.headers["docker-content-digest"] == digest_of(data)
    assert first.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}", repo).content == data
    assert _delta(before, second) == {
        "no_state": 0,
        "algorithm": 0,
        "mismatch": 0,
        reason: len(data),
    }


def test_a_wrong_digest_is_refused_after_a_re_read(apps: Apps, repo: str) -> None:
    first, second = apps
    data = os.urandom(100_000)
    location = _patch(first, repo, _start(first, repo), data, 0)
    before = _rehashed(second)
    wrong = second.request("PUT", f"{location}?digest={digest_of(b'other')}", repo)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert _delta(before, second)["mismatch"] == len(data)
    assert first.request("GET", location, repo).status_code == 404


def test_without_libcrypto_uploads_work_and_the_re_reads_are_counted(
    app_settings: Settings, apps: Apps, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that cannot save states hashes in-process; others re-read what it wrote."""
    first, _ = apps
    monkeypatch.setattr(openssl_sha256, "library_names", list)
    with TestClient(create_app(app_settings)) as client:
        plain = OCIClient(client, first.password)
        assert _RESUMABLE.findall(client.get("/metrics").text) == ["0.0"]
        assert _RESUMABLE.findall(first.client.get("/metrics").text) == ["1.0"]
        head, tail = os.urandom(150_000), os.urandom(50_000)
        location = _patch(first, repo, _start(first, repo), head, 0)
        location = _patch(plain, repo, location, tail, len(head))
        before = _rehashed(first)
        done = first.request("PUT", f"{location}?digest={digest_of(head + tail)}", repo)
        assert done.status_code == 201, done.text
        assert _delta(before, first)["no_state"] == len(head + tail)
