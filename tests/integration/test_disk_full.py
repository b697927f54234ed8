"""A full disk under a running registry: pushes fail with 507, nothing stored is lost.

The API runs in a mount namespace of its own with its data directory (SQLite database
and filesystem blob store) on a small tmpfs; the test fills that tmpfs through
``/proc/<pid>/root`` and frees it again. Then: a push answers ``507`` with an OCI error
body that says the storage is full; the process keeps serving; what was pushed before
pulls byte-identical; an upload keeps the offset it had committed and completes once
space is free; readiness reports the low disk as degraded, never unready; the audit
chain verifies.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services.moorage import MoorageServer, audit_verify, start_moorage

TMPFS_MIB = 64
MIB = 1024 * 1024
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _namespace_prefix() -> list[str]:
    """Run the rest of the command in a private mount namespace with a tmpfs data dir."""
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    script = f'mount -t tmpfs -o size={TMPFS_MIB}m tmpfs "$MOORAGE_DATA_DIR" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", *user, "sh", "-c", script, "sh"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MoorageServer]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {
        "MOORAGE_DATA_DIR": str(data_dir),
        # NOTE: Temporal is not needed: pushes and pulls work without it (events wait).
        "MOORAGE_TEMPORAL__ADDRESS": "127.0.0.1:9",
        "MOORAGE_LIMITS__MIN_FREE_BYTES": str(8 * MIB),
    }
    started = start_moorage(tmp_path / "api", env, ["--workers", "1"], prefix=_namespace_prefix())
    try:
        yield started
    finally:
        started.stop()


def _inside(server: MoorageServer, path: Path) -> Path:
    """``path`` as the API process sees it (through its mount namespace)."""
    return Path(f"/proc/{server.pid}/root") / path.relative_to("/")


def _fill(path: Path, leave_bytes: int) -> None:
    """Write ``path`` until the filesystem has about ``leave_bytes`` free."""
    block = b"\0" * MIB
    with path.open("wb") as out:
        while os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize > leave_bytes:
            try:
                out.write(block)
                out.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_blob(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    return client.put(
        started.headers["location"],
        params={"digest": _digest(data)},
        content=data,
        headers={"content-type": "application/octet-stream"},
    )


def _manifest(config: bytes, layer: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()


def _push_image(client: httpx.Client, repo: str, tag: str, layer: bytes) -> bytes:
    config = b'{"architecture":"amd64","os":"linux"}'
    for blob in (config, layer):
        assert _push_blob(client, repo, blob).status_code == 201
    manifest = _manifest(config, layer)
    answer = client.put(
        f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"content-type": MANIFEST}
    )
    assert answer.status_code == 201, answer.text
    return manifest


def _assert_storage_full(answer: httpx.Response) -> None:
    assert answer.status_code == 507, answer.text
    errors = answer.json()["errors"]
    assert errors[0]["code"] == "UNKNOWN"
    assert "storage is full" in errors[0]["message"]


def test_a_full_disk_refuses_pushes_with_507_and_loses_nothing(server: MoorageServer) -> None:
    data_dir = Path(server.env["MOORAGE_DATA_DIR"])
    filler = _inside(server, data_dir / "filler")
    auth = (server.admin_username, server.admin_password)
    with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
        assert client.post("/api/v1/projects", json={"name": "full"}).status_code == 201
        repo = "full/app"
        kept_layer = secrets.token_bytes(MIB)
        kept_manifest = _push_image(client, repo, "kept", kept_layer)
        ready = client.get("/readyz?verbose").json()
        assert ready["checks"]["disk_space"]["status"] == "ok"

        # An upload in progress: its first chunk is committed before the disk fills.
        started = client.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202
        location = started.headers["location"]
        first, rest = secrets.token_bytes(MIB // 2), secrets.token_bytes(4 * MIB)
        patched = client.patch(
            location,
            content=first,
            headers={
                "content-type": "application/octet-stream",
                "content-range": f"0-{len(first) - 1}",
            },
        )
        assert patched.status_code == 202, patched.text
        location = patched.headers["location"]

        _fill(filler, leave_bytes=MIB)

        refused = client.patch(
            location,
            content=rest,
            headers={
                "content-type": "application/octet-stream",
                "content-range": f"{len(first)}-{len(first) + len(rest) - 1}",
            },
        )
        _assert_storage_full(refused)
        _assert_storage_full(_push_blob(client, repo, secrets.token_bytes(4 * MIB)))

        # The process serves on; what was stored pulls byte-identical.
        assert client.get("/healthz").status_code == 200
        pulled = client.get(f"/v2/{repo}/manifests/kept", headers={"accept": MANIFEST})
        assert pulled.status_code == 200
        assert pulled.content == kept_manifest
        layer = client.get(f"/v2/{repo}/blobs/{_digest(kept_layer)}")
        assert layer.status_code == 200
        assert layer.content == kept_layer

        # Readiness: degraded by the low disk, still ready (pulls work).
        verbose = client.get("/readyz?verbose")
        assert verbose.status_code == 200
        assert verbose.json()["ready"] is True
        assert verbose.json()["checks"]["disk_space"]["status"] == "error"

        # The upload kept the offset it had committed.
        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{len(first) - 1}"

        # Space comes back: the same upload resumes and completes, a new image pushes.
        filler.unlink()
        resumed = client.patch(
            location,
            content=rest,
            headers={
                "content-type": "application/octet-stream",
                "content-range": f"{len(first)}-{len(first) + len(rest) - 1}",
            },
        )
        assert resumed.status_code == 202, resumed.text
        completed = client.put(
            resumed.headers["location"], params={"digest": _digest(first + rest)}
        )
        assert completed.status_code == 201, completed.text
        after_manifest = _push_image(client, repo, "after", first + rest)
        again = client.get(f"/v2/{repo}/manifests/after", headers={"accept": MANIFEST})
        assert again.content == after_manifest
        assert client.get(f"/v2/{repo}/blobs/{_digest(first + rest)}").content == first + rest
        assert client.get("/readyz?verbose").json()["checks"]["disk_space"]["status"] == "ok"

    join = ["nsenter", f"--target={server.pid}", "--mount"]
    if os.geteuid() != 0:
        join.append("--user")
    verified = audit_verify(data_dir, prefix=join)
    assert verified.returncode == 0, verified.stdout + verified.stderr
