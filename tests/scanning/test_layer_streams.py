"""Layer streams: bodies skipped by forward seeks are still decompressed, counted and hashed.

The tar reader passes over the files no analyzer reads with one forward seek each, and
both digests are computed on their own threads: what a scan relies on is that every byte
of every layer is still checked (the stored digest, the config's ``diff_id``), the byte
budget still holds, later layers' deletions still apply in order, and no hashing thread
outlives its analysis.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import threading
import time

import pytest

from core.scan.analyzer import Analyzer
from core.scan.errors import ScanFailedError
from core.scan.hashing import BackgroundHash
from core.scan.packages import PackageType
from core.scan.streams import Budget, LayerStream
from core.scan_settings import ScanSettings
from tests.scanning.images import Layer, MemorySource, canonical, digest_of

MIB = 1024 * 1024
OS_RELEASE = 'ID=debian\nVERSION_ID="12"\n'


def status(*packages: str) -> str:
    return "\n".join(
        f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n"
        for name in packages
    )


def budget(byte_count: int = 1 << 40) -> Budget:
    return Budget(byte_count, 1_000_000, time.monotonic() + 600, time.monotonic)


def chunks(data: bytes, size: int):
    for at in range(0, len(data), size):
        yield data[at : at + size]


def stream_of(raw: bytes, compress: bool, chunk: int, limit: int = 1 << 40) -> LayerStream:
    blob = gzip.compress(raw, compresslevel=1, mtime=0) if compress else raw
    return LayerStream(
        chunks(blob, chunk), digest_of(blob), "gzip" if compress else "none", budget(limit)
    )


def hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "scan-hash"]


@pytest.mark.parametrize(
    ("compress", "chunk"), [(True, 1), (True, 777), (True, MIB), (False, 4099)]
)
def test_reads_and_forward_seeks_give_the_bytes_in_order(compress, chunk):
    rng = random.Random(chunk)
    raw = rng.randbytes(3 * MIB + 123) if chunk > 1 else rng.randbytes(20_000)
    stream = stream_of(raw, compress, chunk)
    try:
        position = 0
        while position < len(raw):
            step = rng.choice([1, 511, 512, 4096, 70_000, 1_500_000])
            if rng.random() < 0.5:
                assert stream.seek(position + step) == min(position + step, len(raw))
                position = stream.tell()
            else:
                data = stream.read(step)
                assert data == raw[position : position + step]
                position += len(data)
        assert stream.read(10) == b""
        stream.drain()
        assert stream.diff_id() == hashlib.sha256(raw).hexdigest()
    finally:
        stream.close()
    assert hash_threads() == []


def test_a_seek_past_the_end_stops_there_and_backward_seeks_are_refused():
    raw = b"x" * 5000
    stream = stream_of(raw, True, 1000)
    stream.seek(100)
    with pytest.raises(io.UnsupportedOperation):
        stream.seek(99)
    assert stream.seek(1 << 30) == len(raw)
    assert stream.read(1) == b""
    stream.close()


def test_skipped_bytes_count_against_the_byte_budget():
    stream = stream_of(bytes(4 * MIB), True, MIB, limit=3 * MIB)
    with pytest.raises(ScanFailedError, match="max_uncompressed_bytes"):
        stream.seek(4 * MIB)
    stream.close()
    assert hash_threads() == []


def test_a_wrong_digest_fails_when_every_byte_was_skipped():
    raw = random.Random(1).randbytes(2 * MIB)
    blob = gzip.compress(raw, mtime=0)
    other = digest_of(blob + b"x")
    stream = LayerStream(chunks(blob, 65536), other, "gzip", budget())
    with pytest.raises(ScanFailedError, match="does not match its digest"):
        stream.seek(len(raw) + 1)
    stream.close()
    assert hash_threads() == []


def test_several_gzip_members_are_one_layer():
    first, second = b"a" * 300_000, b"b" * 200_000
    blob = gzip.compress(first, mtime=0) + gzip.compress(second, mtime=0)
    stream = LayerStream(chunks(blob, 1000), digest_of(blob), "gzip", budget())
    stream.seek(250_000)
    assert stream.read(100_000) == b"a" * 50_000 + b"b" * 50_000
    stream.drain()
    assert stream.diff_id() == hashlib.sha256(first + second).hexdigest()
    stream.close()


@pytest.mark.parametrize("threaded", [True, False])
def test_the_background_hash_is_the_hash_of_the_chunks_in_order(threaded):
    rng = random.Random(7)
    parts = [rng.randbytes(rng.choice([1, 100, 5000, 300_000])) for _ in range(200)]
    running = BackgroundHash("sha512", ahead=1, threaded=threaded)
    for part in parts:
        running.update(part)
    assert running.hexdigest() == hashlib.sha512(b"".join(parts)).hexdigest()
    assert hash_threads() == []
    with pytest.raises(ValueError, match="final"):
        running.update(b"more")
    stopped = BackgroundHash("sha256", threaded=threaded)
    stopped.update(b"x" * 100_000)
    stopped.close()
    assert hash_threads() == []
    with pytest.raises(ValueError, match="closed"):
        stopped.hexdigest()


def image_with_diff_ids(source: MemorySource, raws: list[bytes], diff_ids: list[str], gz: bool):
    descriptors = []
    for raw in raws:
        blob = gzip.compress(raw, compresslevel=1, mtime=0) if gz else raw
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
        descriptors.append({"mediaType": media, "digest": source.add_blob(blob), "size": len(blob)})
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": source.add_blob(config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    )
    digest = digest_of(manifest)
    source.manifests[digest] = manifest
    return digest


@pytest.mark.parametrize("gz", [True, False])
def test_a_layer_that_is_not_the_configs_diff_id_fails_the_analysis(gz):
    first = Layer().file("etc/os-release", OS_RELEASE).tar()
    second = Layer().file("var/lib/dpkg/status", status("a")).tar()
    source = MemorySource()
    good = image_with_diff_ids(source, [first, second], [digest_of(first), digest_of(second)], gz)
    [result] = Analyzer(ScanSettings()).analyze(source, good)
    assert result.failure is None
    assert [p.name for p in result.packages] == ["a"]
    wrong = digest_of(second + b"\0" * 512)
    bad = image_with_diff_ids(source, [first, second], [digest_of(first), wrong], gz)
    [result] = Analyzer(ScanSettings()).analyze(source, bad)
    assert result.packages == ()
    layer_digest = json.loads(source.manifests[bad])["layers"][1]["digest"]
    assert result.failure == f"layer {layer_digest} does not match the config's diff_id {wrong}"


def test_large_skipped_files_and_later_deletions_apply_in_layer_order():
    rng = random.Random(3)
    base = (
        Layer()
        .file("opt/big/one.bin", rng.randbytes(3 * MIB + 5))
        .file("etc/os-release", OS_RELEASE)
        .file("opt/big/two.bin", rng.randbytes(2 * MIB))
        .file("var/lib/dpkg/status", status("kept", "replaced"))
        .file(
            "usr/lib/python3/dist-packages/gone-1.0.dist-info/METADATA",
            "Name: gone\nVersion: 1.0\n",
        )
    )
    upper = (
        Layer()
        .file("opt/big/three.bin", rng.randbytes(MIB + 1))
        .whiteout("usr/lib/python3/dist-packages/gone-1.0.dist-info")
        .file("var/lib/dpkg/status", status("kept", "newer"))
    )
    last = Layer().whiteout("var/lib/dpkg/status").file("opt/big/four.bin", rng.randbytes(MIB))
    source = MemorySource(chunk=MIB)
    alone = Analyzer(ScanSettings()).analyze(source, source.add_image([base]))[0]
    assert {(p.type, p.name) for p in alone.packages} == {
        (PackageType.DEB, "kept"),
        (PackageType.DEB, "replaced"),
        (PackageType.PYPI, "gone"),
    }
    two = Analyzer(ScanSettings()).analyze(source, source.add_image([base, upper]))[0]
    assert two.failure is None
    assert {p.name for p in two.packages if p.type is PackageType.DEB} == {"kept", "newer"}
    assert not [p for p in two.packages if p.type is PackageType.PYPI]
    three = Analyzer(ScanSettings()).analyze(source, source.add_image([base, upper, last]))[0]
    assert three.failure is None
    assert three.packages == ()
    assert hash_threads() == []


def test_no_hashing_thread_outlives_a_failed_analysis():
    good = gzip.compress(Layer().file("a", random.Random(5).randbytes(MIB)).tar(), mtime=0)
    corrupt = good[: len(good) // 2] + bytes(b ^ 0xFF for b in good[len(good) // 2 :])
    source = MemorySource()
    digest = source.add_image([corrupt], as_stored=True)
    [result] = Analyzer(ScanSettings()).analyze(source, digest)
    assert result.failure is not None
    assert "is corrupt" in result.failure
    assert hash_threads() == []
