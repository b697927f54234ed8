"""Hostile and broken images: each ends the analysis with a clear reason, within bounds."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile

from core.digests import Digest
from core.scan.analyzer import Analyzer
from core.scan.source import BlobStoreSource
from core.scan_settings import ScanSettings
from storage.blobs.filesystem import FilesystemBlobStore
from tests.scanning.images import Layer, MemorySource, digest_of

MIB = 1024 * 1024


def failure(source: MemorySource, digest: str, clock=None, **limits) -> str:
    analyzer = Analyzer(ScanSettings(**limits), *((clock and [clock]) or []))
    [result] = analyzer.analyze(source, digest)
    assert result.packages == ()
    assert result.failure is not None
    return result.failure


def raw_tar(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        info.size = 0
        archive.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def test_dot_dot_paths():
    source = MemorySource()
    digest = source.add_image([raw_tar("etc/../../../../tmp/evil")])
    assert "leaves the image root" in failure(source, digest)


def test_absolute_hard_links():
    source = MemorySource()
    digest = source.add_image([raw_tar("etc/passwd2", tarfile.LNKTYPE, "/etc/passwd")])
    assert "points to an absolute path" in failure(source, digest)


def test_hard_link_leaving_the_root():
    source = MemorySource()
    digest = source.add_image([raw_tar("x", tarfile.LNKTYPE, "../../etc/shadow")])
    assert "leaves the image root" in failure(source, digest)


def test_symlink_loops():
    layer = Layer().symlink("a/b", "../c").symlink("c", "a/b").file("etc/os-release", "ID=x\n")
    source = MemorySource()
    assert "symbolic link loop" in failure(source, source.add_image([layer]))


def test_absolute_symlinks_stay_inside_the_image():
    # An absolute or escaping symlink target is resolved inside the image, never on the host.
    layer = (
        Layer()
        .file("usr/lib/os-release", "ID=debian\nVERSION_ID=12\n")
        .symlink("etc/os-release", "/../../usr/lib/os-release")
        .symlink("etc/shadow-link", "/etc/shadow")
    )
    source = MemorySource()
    [result] = Analyzer(ScanSettings()).analyze(source, source.add_image([layer]))
    assert result.failure is None
    assert result.os is not None
    assert result.os.id == "debian"


def test_gzip_bomb():
    # 64 MiB of zeros compress to about 64 KiB; the limit is 8 MiB.
    bomb = io.BytesIO()
    with tarfile.open(fileobj=bomb, mode="w") as archive:
        info = tarfile.TarInfo("zeros")
        info.size = 64 * MIB
        archive.addfile(info, io.BytesIO(bytes(64 * MIB)))
    source = MemorySource()
    digest = source.add_image([bomb.getvalue()])
    assert len(source.blobs[next(iter(source.blobs))]) < MIB
    assert "max_uncompressed_bytes" in failure(source, digest, max_uncompressed_bytes=8 * MIB)


def test_zip_bomb_in_a_jar():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "META-INF/maven/g/a/pom.properties", "groupId=g\nartifactId=a\nversion=1\n"
        )
        archive.writestr("BOOT-INF/lib/zeros.jar", bytes(64 * MIB))
    source = MemorySource()
    digest = source.add_image([Layer().file("app.jar", buffer.getvalue())])
    assert "archive bomb" in failure(source, digest)


def test_deeply_nested_package_json():
    document = '{"name":"deep","version":"1.0.0","x":' + "[" * 10_000 + "]" * 10_000 + "}"
    layer = Layer().file("app/node_modules/deep/package.json", document)
    source = MemorySource()
    assert "max_json_depth" in failure(source, source.add_image([layer]))


def test_corrupt_layer():
    good = gzip.compress(Layer().file("a", "b" * 1000).tar(), mtime=0)
    corrupt = good[:20] + bytes(b ^ 0xFF for b in good[20:40]) + good[40:]
    source = MemorySource()
    digest = source.add_image([corrupt], as_stored=True)
    assert "is corrupt" in failure(source, digest)


def test_not_a_tar():
    source = MemorySource()
    digest = source.add_image([gzip.compress(b"hello" * 300, mtime=0)], as_stored=True)
    assert "not a valid tar" in failure(source, digest)


def test_truncated_layer():
    source = MemorySource()
    digest = source.add_image([Layer().file("a", "b" * 10000)])
    [layer] = json.loads(source.manifests[digest])["layers"]
    blob = source.blobs[layer["digest"]]
    truncated = blob[: len(blob) // 2]
    # Stored under its own digest, so only the truncation can be the failure.
    source.blobs[layer["digest"]] = truncated
    manifest = source.manifests[digest].replace(
        layer["digest"].encode(), digest_of(truncated).encode()
    )
    source.blobs[digest_of(truncated)] = truncated
    source.manifests[digest_of(manifest)] = manifest
    assert "truncated gzip stream" in failure(source, digest_of(manifest))


def test_layer_digest_mismatch():
    source = MemorySource()
    digest = source.add_image([Layer().file("etc/os-release", "ID=debian\n")])
    layer_digest = next(d for d in source.blobs if source.blobs[d][:2] == b"\x1f\x8b")
    tampered = gzip.compress(Layer().file("etc/os-release", "ID=alpine\n").tar(), mtime=0)
    source.blobs[layer_digest] = tampered
    assert "does not match its digest" in failure(source, digest)


def test_too_many_entries_and_time():
    layer = Layer()
    for i in range(50):
        layer.file(f"f{i}", "x")
    source = MemorySource()
    digest = source.add_image([layer])
    assert "max_entries" in failure(source, digest, max_entries=10)
    ticks = iter(range(1_000_000))
    assert "max_seconds" in failure(source, digest, clock=lambda: float(next(ticks)), max_seconds=5)


def test_failed_analysis_leaves_the_blob_store_untouched(tmp_path):
    memory = MemorySource()
    digest = memory.add_image([raw_tar("../escape")])
    store = FilesystemBlobStore(tmp_path)
    tenant = store.new_tenant_id("p")
    store.create_tenant(tenant)
    for key, data in memory.blobs.items():
        store.put_blob(tenant, Digest.parse(key), data)
    before = {str(d): b"".join(store.read_blob(tenant, d)) for d in store.list_blobs(tenant)}
    source = BlobStoreSource(store, tenant, memory.manifests.get)
    [result] = Analyzer(ScanSettings()).analyze(source, digest)
    assert result.failure is not None
    assert "leaves the image root" in result.failure
    after = {str(d): b"".join(store.read_blob(tenant, d)) for d in store.list_blobs(tenant)}
    assert after == before
