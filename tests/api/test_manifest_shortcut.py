"""The manifest-read shortcut answers exactly like the full path, or leaves the request to it.

Every request is sent to two apps on the same database: the default app (with the
shortcut) and one built with ``shortcuts=False``. Status, headers (but ``date``) and body
must match, and so must the audit events they leave; the shortcut must have answered the
authorized reads (where the database offers non-waiting reads) and none of the others.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy
from litestar.testing import TestClient

from api.app import MoorageApp, create_app
from core.audit import AuditQuery
from core.settings import Settings
from tests.api.oci import OCIClient, unique_project


@pytest.fixture(scope="module")
def full_path(app_settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(app_settings, shortcuts=False)) as client:
        yield client


def _shortcut(oci: OCIClient) -> MoorageApp:
    app = oci.client.app  # type: ignore[attr-defined]
    assert isinstance(app, MoorageApp)
    assert app.shortcut is not None
    return app


def _seen(response: object) -> tuple[int, list[tuple[str, str]], bytes]:
    status = response.status_code  # type: ignore[attr-defined]
    headers = sorted((k, v) for k, v in response.headers.items() if k != "date")  # type: ignore[attr-defined]
    return status, headers, response.content  # type: ignore[attr-defined]


def _both(
    oci: OCIClient,
    full: TestClient,  # type: ignore[type-arg]
    method: str,
    path: str,
    headers: dict[str, str],
) -> tuple[object, object]:
    request_id = uuid.uuid4().hex
    sent = {**headers, "X-Request-ID": request_id}
    return (
        oci.client.request(method, path, headers=sent),
        full.request(method, path, headers=sent),
    )


def _answered(oci: OCIClient) -> int:
    shortcut = _shortcut(oci).shortcut
    assert shortcut is not None
    return shortcut.answered


def _audit_events(oci: OCIClient, full: TestClient, repo: str) -> list[Any]:  # type: ignore[type-arg]
    """The audit events of ``repo``'s project, both apps' queues written first."""
    full.app.state["registry"].identity.audit.flush()  # its own batched writer
    registry = _shortcut(oci).state["registry"]
    query = AuditQuery(project=repo.partition("/")[0], limit=1000)
    return [stored.event for stored in registry.identity.audit.query(query)]


def _fields(event: Any) -> tuple[object, ...]:
    """What must not depend on the path a request took (not its time or request id)."""
    names = ("actor", "actor_kind", "auth_method", "action", "project", "result", "status")
    return tuple(getattr(event, name) for name in (*names, "user_agent"))


def test_authorized_reads_match_the_full_path(
    oci: OCIClient,
    full_path: TestClient,  # type: ignore[type-arg]
    repo: str,
) -> None:
    pushed = oci.push_image(repo, "v1")
    auth = oci.headers(repo, "pull")
    before = _answered(oci)
    reads = 0
    for method in ("GET", "HEAD"):
        for reference in ("v1", pushed.digest):
            for accept in ({}, {"Accept": "application/vnd.oci.image.manifest.v1+json"}):
                fast, full = _both(
                    oci, full_path, method, f"/v2/{repo}/manifests/{reference}", {**auth, **accept}
                )
                assert _seen(fast) == _seen(full)
                assert fast.status_code == 200  # type: ignore[attr-defined]
                reads += 1
    # both backends: SQLite reads on the event loop, PostgreSQL on a worker thread
    assert _answered(oci) - before == reads


def test_everything_else_is_left_to_the_full_path(
    oci: OCIClient,
    full_path: TestClient,  # type: ignore[type-arg]
    repo: str,
) -> None:
    pushed = oci.push_image(repo, "v1")
    other = f"{unique_project()}/app"
    oci.push_image(other, "v1")
    pull = oci.headers(repo, "pull")
    push_only = oci.headers(repo, "push")
    cases = [
        ("GET", f"/v2/{repo}/manifests/v1", {}),  # no token
        ("GET", f"/v2/{repo}/manifests/v1", {"Authorization": "Bearer not.a.token"}),
        ("GET", f"/v2/{repo}/manifests/v1", {"Authorization": "Basic YWRtaW46eA=="}),
        ("GET", f"/v2/{repo}/manifests/v1", push_only),  # no pull grant
        ("GET", f"/v2/{other}/manifests/v1", pull),  # a token for another repository
        ("GET", f"/v2/{repo}/manifests/v2", pull),  # unknown tag
        ("GET", f"/v2/{repo}/manifests/-bad-tag", pull),  # malformed tag
        ("GET", f"/v2/{repo}/manifests/sha256:{'0' * 64}", pull),  # unknown digest
        ("GET", f"/v2/{repo}/manifests/sha256:zz", pull),  # malformed digest
        ("HEAD", f"/v2/{repo}-gone/manifests/v1", pull),  # unknown repository
        ("GET", f"/v2/{repo.upper()}/manifests/v1", pull),  # invalid name
        ("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", pull),  # not a read
    ]
    before = _answered(oci)
    for method, path, headers in cases:
        fast, full = _both(oci, full_path, method, path, headers)
        assert _seen(fast) == _seen(full), (method, path)
        assert fast.status_code != 200, (method, path)  # type: ignore[attr-defined]
    # A trailing slash is not the route's shape; the full path accepts it.
    fast, full = _both(oci, full_path, "GET", f"/v2/{repo}/manifests/v1/", pull)
    assert _seen(fast) == _seen(full)
    assert _answered(oci) == before


def test_audit_events_and_pull_times_are_the_same(
    oci: OCIClient,
    full_path: TestClient,  # type: ignore[type-arg]
    repo: str,
    app_settings: Settings,
) -> None:
    pushed = oci.push_image(repo, "v1")
    auth = oci.headers(repo, "pull")
    engine = sqlalchemy.create_engine(app_settings.resolved_database_url)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    try:
        with engine.begin() as c:
            c.execute(sqlalchemy.text("UPDATE manifest SET pulled_at = :t"), {"t": long_ago})
        ids = {}
        for which, client in (("fast", oci.client), ("full", full_path)):
            request_id = f"{which}-{uuid.uuid4().hex}"
            ids[which] = request_id
            response = client.get(
                f"/v2/{repo}/manifests/v1",
                headers={**auth, "X-Request-ID": request_id, "User-Agent": "shortcut-test"},
            )
            assert response.status_code == 200
            assert response.headers["x-request-id"] == request_id
            with engine.connect() as c:
                pulled = c.execute(
                    sqlalchemy.text("SELECT pulled_at FROM manifest WHERE digest = :d"),
                    {"d": pushed.digest},
                ).scalar_one()
            assert pulled is not None
            assert str(pulled) > str(long_ago.replace(tzinfo=None))  # a new pull time
            with engine.begin() as c:
                c.execute(sqlalchemy.text("UPDATE manifest SET pulled_at = :t"), {"t": long_ago})
    finally:
        engine.dispose()
    found = {e.request_id: e for e in _audit_events(oci, full_path, repo)}
    fast, full = found[ids["fast"]], found[ids["full"]]
    assert _fields(fast) == _fields(full)
    assert (fast.action, fast.result, fast.status) == ("pull_manifest", "success", 200)


_OCI = "application/vnd.oci.image.manifest.v1+json"


def _put(client: object, path: str, auth: dict[str, str], body: bytes, request_id: str) -> object:
    headers = {**auth, "Content-Type": _OCI, "X-Request-ID": request_id}
    return client.put(path, content=body, headers=headers)  # type: ignore[attr-defined]


def test_pushes_match_the_full_path(
    oci: OCIClient,
    full_path: TestClient,  # type: ignore[type-arg]
    repo: str,
) -> None:
    subject = oci.push_image(repo, "base")
    push = oci.headers(repo, "pull,push")
    plain = json.dumps(oci.image(repo)).encode()
    referrer = json.dumps(
        oci.image(
            repo,
            subject={"mediaType": _OCI, "digest": subject.digest, "size": len(subject.payload)},
        )
    ).encode()
    before = _answered(oci)
    for body in (plain, referrer):
        request_id = uuid.uuid4().hex
        fast = _put(oci.client, f"/v2/{repo}/manifests/fast", push, body, request_id)
        full = _put(full_path, f"/v2/{repo}/manifests/full", push, body, request_id)
        assert _seen(fast) == _seen(full)
        assert fast.status_code == 201  # type: ignore[attr-defined]
    assert "oci-subject" in full.headers  # type: ignore[attr-defined]
    assert _answered(oci) - before == 2
    events = _audit_events(oci, full_path, repo)
    pushes = [e for e in events if e.action == "push_manifest" and e.resource.endswith(":fast")]
    same = [e for e in events if e.action == "push_manifest" and e.resource.endswith(":full")]
    assert len(pushes) == len(same) == 2
    assert [_fields(e) for e in pushes] == [_fields(e) for e in same]
    for tag in ("fast", "full"):
        got = oci.request("GET", f"/v2/{repo}/manifests/{tag}", repo)
        assert got.content == referrer


def test_refused_pushes_are_left_to_the_full_path(
    oci: OCIClient,
    full_path: TestClient,  # type: ignore[type-arg]
    repo: str,
    app_settings: Settings,
) -> None:
    oci.push_image(repo, "v1")
    push = oci.headers(repo, "pull,push")
    good = oci.image(repo)
    unknown_blob = {**good, "layers": [{**good["layers"][0], "digest": f"sha256:{'1' * 64}"}]}
    too_big = b" " * (app_settings.limits.manifest_max_bytes + 1)
    body = json.dumps(good).encode()
    cases = [
        (f"/v2/{repo}/manifests/a", {}, body),  # no token
        (f"/v2/{repo}/manifests/a", oci.headers(repo, "pull"), body),  # no push grant
        (f"/v2/{repo}/manifests/a", push, json.dumps(unknown_blob).encode()),
        (f"/v2/{repo}/manifests/a", push, b"{not json"),
        (f"/v2/{repo}/manifests/sha256:{'2' * 64}", push, body),  # digest mismatch
        (f"/v2/{repo}/manifests/a", push, too_big),
        (f"/v2/{repo}/manifests/-bad", push, body),
    ]
    before = _answered(oci)
    for path, auth, payload in cases:
        request_id = uuid.uuid4().hex
        fast = _put(oci.client, path, auth, payload, request_id)
        full = _put(full_path, path, auth, payload, request_id)
        assert _seen(fast) == _seen(full), path
        assert fast.status_code >= 400, path  # type: ignore[attr-defined]
    assert _answered(oci) == before


def test_basic_credentials_take_the_full_path_with_the_same_answer(
    oci: OCIClient,
    full_path: TestClient,  # type: ignore[type-arg]
    repo: str,
) -> None:
    pushed = oci.push_image(repo, "v1")
    basic = {
        "Authorization": "Basic " + base64.b64encode(f"admin:{oci.password}".encode()).decode()
    }
    before = _answered(oci)
    for method in ("GET", "HEAD"):
        for reference in ("v1", pushed.digest):
            fast, full = _both(oci, full_path, method, f"/v2/{repo}/manifests/{reference}", basic)
            assert _seen(fast) == _seen(full)
            assert fast.status_code == 200  # type: ignore[attr-defined]
    body = json.dumps(oci.image(repo)).encode()
    request_id = uuid.uuid4().hex
    fast = _put(oci.client, f"/v2/{repo}/manifests/b", basic, body, request_id)
    full = _put(full_path, f"/v2/{repo}/manifests/b", basic, body, request_id)
    assert _seen(fast) == _seen(full)
    assert fast.status_code == 201  # type: ignore[attr-defined]
    # Basic credentials need a password check in a thread: the fast path leaves them.
    assert _answered(oci) == before


@pytest.mark.parametrize("awaited", [True, False], ids=["awaited", "worker-thread"])
def test_a_fast_path_read_that_fails_is_answered_by_the_full_path(
    oci: OCIClient, repo: str, monkeypatch: pytest.MonkeyPatch, awaited: bool
) -> None:
    """PostgreSQL's reads (awaited on the loop, or on a worker thread): a 503, not a 500.

    The fast path's read fails, then the full path's: a database that cannot be reached.
    """
    oci.push_image(repo, "v1")
    manifests = _shortcut(oci).state["registry"].manifests
    # NOTE: both backends take the read chosen here (SQLite would read on the loop)
    monkeypatch.setattr(type(manifests), "reads_nowait", property(lambda _self: False))
    monkeypatch.setattr(type(manifests), "reads_async", property(lambda _self: awaited))
    monkeypatch.setattr(manifests, "read_nowait", lambda _name, _reference: None)
    real_read = manifests.read
    failures = {"awaited": int(awaited), "thread": 2 - int(awaited)}

    async def read_async(name: Any, reference: Any) -> Any:
        if failures["awaited"]:
            failures["awaited"] -= 1
            raise psycopg.OperationalError("the server is down")
        return real_read(name, reference)

    def read(name: Any, reference: Any) -> Any:
        if failures["thread"]:
            failures["thread"] -= 1
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("the server is down"))
        return real_read(name, reference)

    monkeypatch.setattr(manifests, "read_async", read_async)
    monkeypatch.setattr(manifests, "read", read)
    before = _answered(oci)
    down = oci.request("GET", f"/v2/{repo}/manifests/v1", repo)
    assert down.status_code == 503  # type: ignore[attr-defined]
    assert down.json()["errors"][0]["code"] == "UNAVAILABLE"  # type: ignore[attr-defined]
    assert down.headers["retry-after"]  # type: ignore[attr-defined]
    assert failures == {"awaited": 0, "thread": 0}  # the fast path's and the full path's
    up = oci.request("GET", f"/v2/{repo}/manifests/v1", repo)
    assert up.status_code == 200  # type: ignore[attr-defined]
    assert _answered(oci) - before == 1  # the second GET was answered by the fast path
