"""The blob store contract, run against every adapter (see ``backends.py``).

Each test uses fresh tenants; the ``new_tenant`` fixture deletes them afterwards and
checks that their storage is empty, and each backend checks on close that nothing was
left outside the tenants.
"""

from __future__ import annotations

import hashlib
import random
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from core.digests import Digest
from core.ports import BlobNotFoundError, BlobStore, UploadNotFoundError
from storage.blobs.s3 import S3BlobStore
from tests.contract.backends import (
    Backend,
    FilesystemBackend,
    S3Backend,
    S3CredentialsBackend,
    blob_entry,
)

MiB = 1024 * 1024
NewTenant = Callable[[], str]


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def joined(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


def upload(store: BlobStore, tenant: str, upload_id: str, chunks: Iterable[bytes]) -> int:
    """Start an upload and send each chunk through its own writer, like separate requests."""
    store.start_upload(tenant, upload_id)
    size = 0
    for chunk in chunks:
        writer = store.upload_writer(tenant, upload_id, size)
        writer.write(chunk)
        size = writer.commit()
    return size


def pieces(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    start = 0
    for size in sizes:
        yield data[start : start + size]
        start += size
    assert start == len(data)


def s3_etag(backend: Backend, tenant: str, digest: Digest) -> str | None:
    if not isinstance(backend, S3Backend):
        return None
    key = backend.base(tenant) + blob_entry(digest)
    return backend.client.head_object(Bucket=backend.bucket(tenant), Key=key)["ETag"]


# uploads ------------------------------------------------------------------------------
def test_upload_roundtrip(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    data = payload(300_000, seed=1)
    digest = Digest.of(data)
    store.start_upload(tenant, "up-1")
    writer = store.upload_writer(tenant, "up-1", 0)
    for chunk in pieces(data, [1, 99_999, 200_000]):
        writer.write(chunk)
    assert writer.commit() == len(data)
    assert joined(store.read_upload(tenant, "up-1")) == data

    store.finish_upload(tenant, "up-1", digest)

    assert store.stat_blob(tenant, digest) == len(data)
    assert hashlib.sha256(joined(store.read_blob(tenant, digest))).hexdigest() == digest.hex
    assert list(store.list_blobs(tenant)) == [digest]
    assert backend.raw_entries(tenant) == {blob_entry(digest)}
    with pytest.raises(UploadNotFoundError):
        store.read_upload(tenant, "up-1")


def test_chunked_upload_across_writers(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    data = payload(250_001, seed=2)
    store.start_upload(tenant, "chunked")
    totals: list[int] = []
    for chunk in pieces(data, [100_000, 1, 150_000]):
        writer = store.upload_writer(tenant, "chunked", totals[-1] if totals else 0)
        writer.write(chunk)
        totals.append(writer.commit())
    assert totals == [100_000, 100_001, 250_001]
    assert joined(store.read_upload(tenant, "chunked")) == data
    digest = Digest.of(data, "sha512")
    store.finish_upload(tenant, "chunked", digest)
    assert joined(store.read_blob(tenant, digest)) == data
    assert backend.raw_entries(tenant) == {blob_entry(digest)}


def test_unrecorded_chunk_is_not_part_of_the_upload(
    backend: Backend, new_tenant: NewTenant
) -> None:
    """A chunk committed to storage whose offset never reached the database is ignored."""
    store, tenant = backend.store, new_tenant()
    store.start_upload(tenant, "stale")
    first = store.upload_writer(tenant, "stale", 0)
    first.write(b"durable-")
    assert first.commit() == 8
    stale = store.upload_writer(tenant, "stale", 8)
    stale.write(b"never recorded")
    stale.commit()
    assert joined(store.read_upload(tenant, "stale", 8)) == b"durable-"
    digest = Digest.of(b"durable-")
    store.finish_upload(tenant, "stale", digest, 8)
    assert joined(store.read_blob(tenant, digest)) == b"durable-"
    assert backend.raw_entries(tenant) == {blob_entry(digest)}


def test_empty_upload_makes_empty_blob(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    store.start_upload(tenant, "empty")
    assert joined(store.read_upload(tenant, "empty")) == b""
    writer = store.upload_writer(tenant, "empty", 0)
    assert writer.commit() == 0
    digest = Digest.of(b"")
    store.finish_upload(tenant, "empty", digest)
    assert store.stat_blob(tenant, digest) == 0
    assert joined(store.read_blob(tenant, digest)) == b""
    assert backend.raw_entries(tenant) == {blob_entry(digest)}


def test_aborted_writer_leaves_size_unchanged(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    assert upload(store, tenant, "abort", [b"0123456789"]) == 10
    writer = store.upload_writer(tenant, "abort", 10)
    writer.write(b"discard me")
    writer.abort()
    writer.abort()  # idempotent
    with pytest.raises(ValueError):
        writer.write(b"late")
    assert joined(store.read_upload(tenant, "abort")) == b"0123456789"

    dropped = store.upload_writer(tenant, "abort", 10)  # a request that died mid-way
    dropped.write(b"never committed")
    del dropped
    writer = store.upload_writer(tenant, "abort", 10)
    writer.write(b"ABC")
    assert writer.commit() == 13
    assert joined(store.read_upload(tenant, "abort")) == b"0123456789ABC"
    store.delete_upload(tenant, "abort")
    assert backend.raw_entries(tenant) == set()


def test_writer_at_lower_offset_discards_leftovers(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    # Three requests were stored, but the database only recorded the first one.
    assert upload(store, tenant, "redo", [b"aaaa", b"bbbb", b"cccc"]) == 12
    writer = store.upload_writer(tenant, "redo", 4)
    assert joined(store.read_upload(tenant, "redo")) == b"aaaa"
    writer.write(b"XYZ")
    assert writer.commit() == 7
    assert joined(store.read_upload(tenant, "redo")) == b"aaaaXYZ"
    digest = Digest.of(b"aaaaXYZ")
    store.finish_upload(tenant, "redo", digest)
    assert joined(store.read_blob(tenant, digest)) == b"aaaaXYZ"
    assert backend.raw_entries(tenant) == {blob_entry(digest)}


def test_writer_past_the_stored_size_is_refused(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    upload(store, tenant, "short", [b"abc"])
    with pytest.raises(ValueError):
        store.upload_writer(tenant, "short", 4)
    with pytest.raises(ValueError):
        store.upload_writer(tenant, "short", -1)
    assert joined(store.read_upload(tenant, "short")) == b"abc"
    store.delete_upload(tenant, "short")


def test_missing_upload(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    with pytest.raises(UploadNotFoundError):
        store.upload_writer(tenant, "nope", 0)
    with pytest.raises(UploadNotFoundError):
        store.read_upload(tenant, "nope")
    with pytest.raises(UploadNotFoundError):
        store.finish_upload(tenant, "nope", Digest.of(b"nope"))
    store.delete_upload(tenant, "nope")
    assert backend.raw_entries(tenant) == set()


def test_finish_is_idempotent_and_dedups(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    data = payload(70_000, seed=3)
    digest = Digest.of(data)
    upload(store, tenant, "first", [data[:30_000], data[30_000:]])
    store.finish_upload(tenant, "first", digest)
    store.finish_upload(tenant, "first", digest)  # a retry
    upload(store, tenant, "second", [data])
    store.finish_upload(tenant, "second", digest)
    assert joined(store.read_blob(tenant, digest)) == data
    assert list(store.list_blobs(tenant)) == [digest]
    assert backend.raw_entries(tenant) == {blob_entry(digest)}


def test_large_blob_from_big_parts(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    data = payload(20 * MiB, seed=4)
    digest = Digest.of(data)
    assert upload(store, tenant, "big", pieces(data, [6 * MiB] * 3 + [2 * MiB])) == len(data)
    store.finish_upload(tenant, "big", digest)
    hasher = hashlib.sha256()
    for chunk in store.read_blob(tenant, digest):
        assert len(chunk) <= MiB
        hasher.update(chunk)
    assert hasher.hexdigest() == digest.hex
    etag = s3_etag(backend, tenant, digest)
    assert etag is None or etag.strip('"').endswith("-4")  # one copied part per part object
    assert backend.raw_entries(tenant) == {blob_entry(digest)}


def test_large_blob_from_small_parts(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    data = payload(20 * MiB, seed=5)
    digest = Digest.of(data)
    rng = random.Random(6)
    sizes: list[int] = []
    while sum(sizes) < len(data):
        sizes.append(min(rng.randint(1, 3 * MiB), len(data) - sum(sizes)))
    assert len(sizes) > 2
    assert any(size < 5 * MiB for size in sizes[:-1])
    upload(store, tenant, "small", pieces(data, sizes))
    store.finish_upload(tenant, "small", digest)
    assert hashlib.sha256(joined(store.read_blob(tenant, digest))).hexdigest() == digest.hex
    etag = s3_etag(backend, tenant, digest)
    assert etag is None or etag.strip('"').endswith("-2")  # re-chunked into 16 MiB parts
    assert backend.raw_entries(tenant) == {blob_entry(digest)}


# blobs --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, slice(None)),
        (5, None, slice(5, None)),
        (0, 0, slice(0, 1)),
        (10, 19, slice(10, 20)),
        (MiB - 1, MiB, slice(MiB - 1, MiB + 1)),
        (3 * MiB + 6, None, slice(3 * MiB + 6, None)),
        (0, 10 * MiB, slice(None)),
        (3 * MiB + 7, None, slice(0, 0)),
        (50, 40, slice(0, 0)),
    ],
)
def test_read_blob_ranges(
    backend: Backend,
    new_tenant: NewTenant,
    start: int,
    end: int | None,
    expected: slice,
) -> None:
    store, tenant = backend.store, new_tenant()
    data = payload(3 * MiB + 7, seed=7)
    digest = Digest.of(data)
    store.put_blob(tenant, digest, data)
    chunks = list(store.read_blob(tenant, digest, start, end))
    assert all(len(chunk) <= MiB for chunk in chunks)
    assert b"".join(chunks) == data[expected]


def test_missing_blob(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    digest = Digest.of(b"absent")
    assert store.stat_blob(tenant, digest) is None
    with pytest.raises(BlobNotFoundError):
        store.read_blob(tenant, digest)
    with pytest.raises(BlobNotFoundError):
        store.read_blob(tenant, digest, 5, 1)
    assert store.blob_file(tenant, digest) is None
    store.delete_blob(tenant, digest)
    store.delete_upload(tenant, "absent")
    assert list(store.list_blobs(tenant)) == []
    assert backend.raw_entries(tenant) == set()


def test_put_blob_and_local_file(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    data = b'{"schemaVersion": 2}'
    digest = Digest.of(data)
    store.put_blob(tenant, digest, data)
    store.put_blob(tenant, digest, data)
    assert store.stat_blob(tenant, digest) == len(data)
    path = store.blob_file(tenant, digest)
    if isinstance(backend, FilesystemBackend):
        assert path is not None
        assert Path(path).read_bytes() == data
    else:
        assert path is None
    assert store.blob_location(tenant, digest) is None
    store.delete_blob(tenant, digest)
    store.delete_blob(tenant, digest)
    assert store.stat_blob(tenant, digest) is None
    assert backend.raw_entries(tenant) == set()


def test_upload_file_shows_written_bytes_and_keeps_them_after_finish(
    backend: Backend, new_tenant: NewTenant
) -> None:
    """What a proxy flight relies on to read the cache's upload instead of a copy."""
    store, tenant = backend.store, new_tenant()
    data = payload(3 * MiB, seed=7)
    digest = Digest.of(data)
    store.start_upload(tenant, "u-file")
    path = store.upload_file(tenant, "u-file")
    if not isinstance(backend, FilesystemBackend):
        assert path is None
        store.delete_upload(tenant, "u-file")
        return
    assert path is not None
    with Path(path).open("rb") as reader:
        writer = store.upload_writer(tenant, "u-file", 0)
        writer.write(data[: 2 * MiB])
        assert reader.read() == data[: 2 * MiB], "written bytes are readable before commit"
        writer.write(data[2 * MiB :])
        assert writer.commit() == len(data)
        store.finish_upload(tenant, "u-file", digest, len(data))
        assert not Path(path).exists()
        reader.seek(0)
        assert reader.read() == data, "a handle opened before the finish keeps the bytes"
    assert joined(store.read_blob(tenant, digest)) == data
    store.delete_blob(tenant, digest)
    assert backend.raw_entries(tenant) == set()


def test_delete_blobs_removes_many_and_skips_missing(
    backend: Backend, new_tenant: NewTenant
) -> None:
    store, tenant = backend.store, new_tenant()
    blobs = {Digest.of(payload(64, seed=i)): payload(64, seed=i) for i in range(5)}
    for digest, data in blobs.items():
        store.put_blob(tenant, digest, data)
    kept, *gone = blobs
    absent = Digest.of(b"never stored")
    assert store.delete_blobs(tenant, [*gone, absent]) == {}
    assert set(store.list_blobs(tenant)) == {kept}
    assert store.delete_blobs(tenant, []) == {}
    assert store.delete_blobs(tenant, [kept, *gone]) == {}
    assert backend.raw_entries(tenant) == set()


def test_delete_blobs_reports_an_object_it_cannot_remove(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path / "blobs")
    store = backend.store
    tenant = backend.new_tenant_id()
    store.create_tenant(tenant)
    stuck, free = Digest.of(b"stuck"), Digest.of(b"free")
    store.put_blob(tenant, free, b"free")
    store.put_blob(tenant, stuck, b"stuck")
    path = Path(str(store.blob_file(tenant, stuck)))
    path.unlink()
    path.mkdir()  # NOTE: a directory where the blob's file was cannot be unlinked
    (path / "stray").write_bytes(b"x")
    failed = store.delete_blobs(tenant, [stuck, free])
    assert list(failed) == [stuck]
    assert "IsADirectoryError" in failed[stuck]
    assert store.stat_blob(tenant, free) is None
    store.delete_tenant(tenant)
    backend.close()


def test_blob_location_presigns_when_redirecting(backend: Backend, new_tenant: NewTenant) -> None:
    tenant = new_tenant()
    data = payload(1000, seed=8)
    digest = Digest.of(data)
    backend.store.put_blob(tenant, digest, data)
    if not isinstance(backend, S3Backend):
        # NOTE: the filesystem serves blobs itself; it never hands out a redirect.
        assert not backend.store.redirects_pulls
        assert backend.store.blob_location(tenant, digest) is None
        return
    assert backend.store.redirects_pulls == backend.settings.redirect_pulls
    settings = backend.settings.model_copy(update={"redirect_pulls": True})
    redirecting = S3BlobStore(settings)
    assert redirecting.redirects_pulls
    location = redirecting.blob_location(tenant, digest)
    assert location is not None
    assert location.url.startswith(settings.endpoint_url or "")
    if isinstance(backend, S3CredentialsBackend):
        # NOTE: moto cannot check presigned URLs while it enforces IAM; check that the
        # URL names the tenant's bucket and is signed with the tenant's own key.
        url = urllib.parse.urlsplit(location.url)
        assert url.path.startswith(f"/{backend.bucket(tenant)}/{backend.base(tenant)}")
        query = urllib.parse.parse_qs(url.query)
        signer = query.get("AWSAccessKeyId") or query["X-Amz-Credential"][0].split("/")[:1]
        assert signer == [backend.access_key_of(tenant)]
        return
    with urllib.request.urlopen(location.url, timeout=10) as response:  # noqa: S310
        assert response.read() == data


def test_list_blobs(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    blobs = {
        Digest.of(str(i).encode(), alg): str(i).encode()
        for i, alg in enumerate(["sha256", "sha512", "sha256"])
    }
    for digest, data in blobs.items():
        store.put_blob(tenant, digest, data)
    assert sorted(map(str, store.list_blobs(tenant))) == sorted(map(str, blobs))
    assert backend.raw_entries(tenant) == {blob_entry(d) for d in blobs}


def test_copy_blob_between_tenants(backend: Backend, new_tenant: NewTenant) -> None:
    store, source, target = backend.store, new_tenant(), new_tenant()
    data = payload(100_000, seed=9)
    digest = Digest.of(data)
    store.put_blob(source, digest, data)
    store.copy_blob(source, target, digest)
    store.copy_blob(source, target, digest)  # a retry
    store.copy_blob(source, source, digest)
    store.delete_blob(source, digest)
    assert store.stat_blob(source, digest) is None
    assert joined(store.read_blob(target, digest)) == data
    with pytest.raises(BlobNotFoundError):
        store.copy_blob(source, target, Digest.of(b"missing"))
    assert backend.raw_entries(source) == set()
    assert backend.raw_entries(target) == {blob_entry(digest)}


# tenants ------------------------------------------------------------------------------
def test_delete_tenant_touches_no_other(backend: Backend, new_tenant: NewTenant) -> None:
    store, doomed, kept = backend.store, new_tenant(), new_tenant()
    data = payload(5000, seed=10)
    digest = Digest.of(data)
    for tenant in (doomed, kept):
        store.put_blob(tenant, digest, data)
        upload(store, tenant, "open-upload", [b"partial"])
    backend.make_leftover(doomed)

    store.delete_tenant(doomed)
    store.delete_tenant(doomed)

    assert backend.raw_entries(doomed) == set()
    assert not backend.tenant_present(doomed)
    assert joined(store.read_blob(kept, digest)) == data
    assert joined(store.read_upload(kept, "open-upload")) == b"partial"
    assert list(store.list_blobs(kept)) == [digest]
    store.create_tenant(doomed)  # the id can be used again
    assert store.stat_blob(doomed, digest) is None
    assert list(store.list_blobs(doomed)) == []
    store.delete_upload(kept, "open-upload")
    assert backend.raw_entries(kept) == {blob_entry(digest)}


BAD_TENANTS = ["../x", "a/b", "", "Upper", "x\n", "-x", "a" * 65, ".", "a\x00b"]
BAD_UPLOAD_IDS = ["../x", "a/b", "", "a.b", "x\n", "a" * 65, ".."]


@pytest.mark.parametrize("tenant", BAD_TENANTS)
def test_invalid_tenant_ids_are_rejected(backend: Backend, tenant: str) -> None:
    store, digest = backend.store, Digest.of(b"x")
    calls: list[Callable[[], object]] = [
        lambda: store.create_tenant(tenant),
        lambda: store.delete_tenant(tenant),
        lambda: store.start_upload(tenant, "u1"),
        lambda: store.upload_writer(tenant, "u1", 0),
        lambda: store.read_upload(tenant, "u1"),
        lambda: store.finish_upload(tenant, "u1", digest),
        lambda: store.delete_upload(tenant, "u1"),
        lambda: store.stat_blob(tenant, digest),
        lambda: store.read_blob(tenant, digest),
        lambda: store.blob_file(tenant, digest),
        lambda: store.blob_location(tenant, digest),
        lambda: store.put_blob(tenant, digest, b"x"),
        lambda: store.copy_blob(tenant, "ok", digest),
        lambda: store.copy_blob("ok", tenant, digest),
        lambda: store.delete_blob(tenant, digest),
        lambda: store.list_blobs(tenant),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize("upload_id", BAD_UPLOAD_IDS)
def test_invalid_upload_ids_are_rejected(
    backend: Backend, new_tenant: NewTenant, upload_id: str
) -> None:
    store, tenant = backend.store, new_tenant()
    calls: list[Callable[[], object]] = [
        lambda: store.start_upload(tenant, upload_id),
        lambda: store.upload_writer(tenant, upload_id, 0),
        lambda: store.read_upload(tenant, upload_id),
        lambda: store.finish_upload(tenant, upload_id, Digest.of(b"x")),
        lambda: store.delete_upload(tenant, upload_id),
        lambda: store.upload_file(tenant, upload_id),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert backend.raw_entries(tenant) == set()


def test_forged_digest_is_rejected(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    for forged in (Digest("sha256", "../../../etc/passwd"), Digest("md5", "a" * 32)):
        with pytest.raises(ValueError):
            store.put_blob(tenant, forged, b"x")
        with pytest.raises(ValueError):
            store.stat_blob(tenant, forged)
    assert backend.raw_entries(tenant) == set()


def test_valid_edge_ids_are_accepted(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    upload_id = "A-" + "z" * 62
    upload(store, tenant, upload_id, [b"edge"])
    store.finish_upload(tenant, upload_id, Digest.of(b"edge"))
    assert joined(store.read_blob(tenant, Digest.of(b"edge"))) == b"edge"


# housekeeping -------------------------------------------------------------------------
def test_ping(backend: Backend, new_tenant: NewTenant) -> None:
    new_tenant()
    backend.store.ping()


def test_reap_incomplete(backend: Backend, new_tenant: NewTenant) -> None:
    store, tenant = backend.store, new_tenant()
    upload(store, tenant, "live", [b"kept"])
    backend.make_leftover(tenant)
    if isinstance(backend, FilesystemBackend):
        # moto reports every multipart upload as initiated in 2010, so the age cutoff
        # can only be observed on the filesystem.
        assert store.reap_incomplete(3600) == 0
    leftovers = ("multipart:", "tmp/")
    assert sum(e.startswith(leftovers) for e in backend.raw_entries(tenant)) == 1
    assert store.reap_incomplete(0) == 1
    assert not any(e.startswith(leftovers) for e in backend.raw_entries(tenant))
    assert joined(store.read_upload(tenant, "live")) == b"kept"
    store.delete_upload(tenant, "live")
    assert backend.raw_entries(tenant) == set()
