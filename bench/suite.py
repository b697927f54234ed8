"""The benchmark suite: every case of ``bench.cases`` and ``bench.memory``, in run order."""

from __future__ import annotations

from bench.cases import (
    GIB,
    Case,
    ManifestPut,
    ManifestRead,
    Pull,
    Push,
    Sha256Rate,
    SkopeoIn,
    SkopeoOut,
    WriteRate,
)
from bench.memory import memory_cases
from bench.payloads import MIB


def all_cases() -> list[Case]:
    """Return every case in run order."""
    cases: list[Case] = [
        Sha256Rate("sha256-rate"),
        WriteRate("write-rate"),
        Push("push-mono-1x1GiB", chunked=False, count=1, size=GIB),
        Push("push-chunked-1x1GiB", chunked=True, count=1, size=GIB),
        Push("push-mono-8x128MiB", chunked=False, count=8, size=128 * MIB),
        Push("push-chunked-8x128MiB", chunked=True, count=8, size=128 * MIB),
        Pull("pull-1x1GiB", count=1, size=GIB),
        Pull("pull-8x128MiB", count=8, size=128 * MIB),
    ]
    cases += memory_cases()
    for by_digest in (False, True):
        for method in ("HEAD", "GET"):
            for concurrency in (1, 32):
                ref = "digest" if by_digest else "tag"
                name = f"manifest-{method.lower()}-{ref}-c{concurrency}"
                cases.append(
                    ManifestRead(name, method=method, by_digest=by_digest, concurrency=concurrency)
                )
    cases += [
        ManifestPut("manifest-put-c32", concurrency=32),
        SkopeoIn("skopeo-in"),
        SkopeoOut("skopeo-out"),
    ]
    return cases
