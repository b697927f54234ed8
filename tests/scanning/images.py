"""Deterministic fixture images (tar + gzip, mtime 0) for the analyzer and its oracles."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Layer:
    """Entries of one layer, written in the order they were added."""

    entries: list[tuple[tarfile.TarInfo, bytes | None]] = field(default_factory=list)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def dir(self, name: str) -> Layer:
        self.entries.append((self._info(name, tarfile.DIRTYPE, 0o755), None))
        return self

    def file(self, name: str, data: bytes | str, mode: int = 0o644) -> Layer:
        raw = data.encode() if isinstance(data, str) else data
        parent = name.rstrip("/").rsplit("/", 1)[0] if "/" in name else ""
        known = {info.name for info, _ in self.entries}
        parts = parent.split("/") if parent else []
        for i in range(1, len(parts) + 1):
            directory = "/".join(parts[:i])
            if directory not in known:
                self.dir(directory)
                known.add(directory)
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(raw)
        self.entries.append((info, raw))
        return self

    def symlink(self, name: str, target: str) -> Layer:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.entries.append((info, None))
        return self

    def hardlink(self, name: str, target: str) -> Layer:
        info = self._info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self.entries.append((info, None))
        return self

    def whiteout(self, name: str) -> Layer:
        directory, _, base = name.rpartition("/")
        marker = f"{directory}/.wh.{base}" if directory else f".wh.{base}"
        return self.file(marker, b"")

    def opaque(self, directory: str) -> Layer:
        return self.file(f"{directory}/.wh..wh..opq", b"")

    def tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for info, data in self.entries:
                archive.addfile(info, io.BytesIO(data) if data is not None else None)
        return buffer.getvalue()


class MemorySource:
    """An image source over dicts (what the analyzer reads in unit tests)."""

    def __init__(self, chunk: int = 65536) -> None:
        self.manifests: dict[str, bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.media_types: dict[str, str] = {}
        self._chunk = chunk

    def manifest(self, digest: str) -> bytes | None:
        return self.manifests.get(digest)

    def blob(self, digest: str) -> Iterator[bytes]:
        data = self.blobs[digest]
        for at in range(0, len(data), self._chunk):
            yield data[at : at + self._chunk]

    def add_blob(self, data: bytes) -> str:
        digest = digest_of(data)
        self.blobs[digest] = data
        return digest

    def add_image(
        self,
        layers: list[Layer | bytes],
        architecture: str = "amd64",
        compress: bool = True,
        as_stored: bool = False,
    ) -> str:
        """Store an image built from layers; returns its manifest digest.

        With ``as_stored`` each ``bytes`` layer is the blob itself (no diff_ids are listed).
        """
        descriptors, diff_ids = [], []
        for layer in layers:
            raw = layer.tar() if isinstance(layer, Layer) else layer
            if not as_stored:
                diff_ids.append(digest_of(raw))
            blob = (
                gzip.compress(raw, compresslevel=1, mtime=0) if compress and not as_stored else raw
            )
            descriptors.append(
                {
                    "mediaType": LAYER_GZIP if compress else LAYER_TAR,
                    "digest": self.add_blob(blob),
                    "size": len(blob),
                }
            )
        config = canonical(
            {
                "architecture": architecture,
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        )
        manifest = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": self.add_blob(config),
                    "size": len(config),
                },
                "layers": descriptors,
            }
        )
        digest = digest_of(manifest)
        self.manifests[digest] = manifest
        self.media_types[digest] = OCI_MANIFEST
        return digest

    def add_index(self, entries: list[tuple[str, dict, dict | None]]) -> str:
        """An index of (digest, platform, annotations) entries."""
        manifests = []
        for digest, platform, notes in entries:
            entry = {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(self.manifests[digest]),
                "platform": platform,
            }
            if notes:
                entry["annotations"] = notes
            manifests.append(entry)
        index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        digest = digest_of(index)
        self.manifests[digest] = index
        self.media_types[digest] = OCI_INDEX
        return digest

    def write_oci_layout(self, directory: Path, digest: str) -> Path:
        """Write an OCI image layout holding the image (what Syft reads)."""
        blobs = directory / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        for key, data in [*self.blobs.items(), *self.manifests.items()]:
            (blobs / key.split(":", 1)[1]).write_bytes(data)
        (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": self.media_types[digest],
                    "digest": digest,
                    "size": len(self.manifests[digest]),
                }
            ],
        }
        (directory / "index.json").write_text(json.dumps(index))
        return directory


def write_docker_archive(source: MemorySource, digest: str, path: Path) -> Path:
    """Write an image as a ``docker save`` tarball (what ``osv-scanner --archive`` reads)."""
    manifest = json.loads(source.manifests[digest])
    config_digest = manifest["config"]["digest"]
    entries: list[tuple[str, bytes]] = [
        (f"{config_digest.split(':', 1)[1]}.json", source.blobs[config_digest])
    ]
    layer_names = []
    for layer in manifest["layers"]:
        blob = source.blobs[layer["digest"]]
        raw = gzip.decompress(blob) if layer["mediaType"].endswith("+gzip") else blob
        name = f"{hashlib.sha256(raw).hexdigest()}/layer.tar"
        layer_names.append(name)
        entries.append((name, raw))
    index = [
        {"Config": entries[0][0], "RepoTags": ["moorage/fixture:latest"], "Layers": layer_names}
    ]
    entries.append(("manifest.json", json.dumps(index).encode()))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return path
