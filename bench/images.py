"""Build an OCI image layout directory of random layers for the skopeo cases.

Layers are tar archives holding one file of random bytes, wrapped in gzip with stored
(uncompressed) deflate blocks: valid ``tar+gzip`` that costs no compression time, since
random bytes do not compress anyway. Timestamps are fixed so the layout depends only on
the payload bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tarfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from bench.client import image_manifest
from bench.payloads import MIB, Blob, PayloadFactory

if TYPE_CHECKING:
    from pathlib import Path

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, mtime 0, unix
STORED_BLOCK_MAX = 0xFFFF
TAR_BLOCK = 512
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z


@dataclass(frozen=True)
class Layout:
    """An OCI image layout on disk.

    Attributes:
        path: The layout directory.
        tag: The ``org.opencontainers.image.ref.name`` of its only manifest.
        size: Total bytes of the compressed layers, config and manifest.
    """

    path: Path
    tag: str
    size: int

    @property
    def reference(self) -> str:
        """The skopeo reference ``oci:<path>:<tag>``."""
        return f"oci:{self.path}:{self.tag}"


class _StoredGzipWriter:
    """Writes a gzip member of stored deflate blocks, hashing what reaches the file."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._crc = 0
        self._size = 0
        self.sha256 = hashlib.sha256()
        self.written = 0
        self._emit(GZIP_HEADER)

    def _emit(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self.sha256.update(data)
        self.written += len(data)

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self._crc = zlib.crc32(view, self._crc)
        self._size += len(view)
        for start in range(0, len(view), STORED_BLOCK_MAX):
            block = view[start : start + STORED_BLOCK_MAX]
            self._emit(b"\x00" + struct.pack("<HH", len(block), len(block) ^ 0xFFFF))
            self._emit(block)

    def close(self) -> None:
        self._emit(b"\x01\x00\x00\xff\xff")  # final, empty stored block
        self._emit(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))


def _write_layer(blob: Blob, directory: Path, name: str) -> tuple[str, str, int]:
    """Write one tar+gzip layer holding ``blob`` as the file ``name``.

    Returns:
        The compressed digest, the uncompressed digest (diff ID) and the compressed size.
    """
    tmp = directory / f"layer-{name}.tmp"
    diff = hashlib.sha256()
    with tmp.open("wb") as out:
        gz = _StoredGzipWriter(out)

        def put(data: bytes | memoryview) -> None:
            diff.update(data)
            gz.write(data)

        info = tarfile.TarInfo(name)
        info.size = blob.size
        info.mtime = FIXED_MTIME
        info.mode = 0o644
        put(info.tobuf(format=tarfile.PAX_FORMAT))
        for view in blob.iter_pieces(8 * MIB):
            put(view)
        put(b"\0" * (-blob.size % TAR_BLOCK))
        put(b"\0" * (2 * TAR_BLOCK))
        gz.close()
    digest = gz.sha256.hexdigest()
    tmp.rename(directory / digest)
    return "sha256:" + digest, "sha256:" + diff.hexdigest(), gz.written


def _write_blob(directory: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (directory / digest).write_bytes(data)
    return "sha256:" + digest


def build_layout(
    path: Path, payloads: PayloadFactory, layer_sizes: list[int], tag: str = "bench"
) -> Layout:
    """Build an OCI image layout with one random ``tar+gzip`` layer per size.

    Args:
        path: Directory to create; must not exist yet.
        payloads: Source of unique random content.
        layer_sizes: Size of the file inside each layer.
        tag: Reference name of the manifest in ``index.json``.

    Returns:
        The layout description.
    """
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True)
    layers: list[tuple[int, str]] = []
    diff_ids: list[str] = []
    for index, size in enumerate(layer_sizes):
        digest, diff_id, written = _write_layer(
            payloads.blob(size, f"layer{index}", digest=False), blobs_dir, f"file{index}.bin"
        )
        layers.append((written, digest))
        diff_ids.append(diff_id)
    config = json.dumps(
        {
            "created": "2000-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2000-01-01T00:00:00Z"} for _ in diff_ids],
        },
        separators=(",", ":"),
    ).encode()
    config_digest = _write_blob(blobs_dir, config)
    manifest = image_manifest((config, config_digest), layers)
    manifest_digest = _write_blob(blobs_dir, manifest)
    index_json = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index_json), encoding="utf-8")
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}', encoding="utf-8")
    total = sum(size for size, _ in layers) + len(config) + len(manifest)
    return Layout(path=path, tag=tag, size=total)
