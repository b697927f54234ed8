"""Build and read OCI image layout directories in Python, without a container engine.

Layers are gzip'd tars of random files with fixed mtimes and owners, so the bytes of
one image never collide with another's while the structure stays deterministic.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z
CREATED = "2023-11-14T22:13:20Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Blob:
    """Content and media type of one blob or manifest."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


@dataclass(frozen=True)
class OciImage:
    """An image written to an OCI layout directory under ``tag``."""

    layout: Path
    tag: str
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def manifest_digest(self) -> str:
        return self.manifest.digest

    @property
    def reference(self) -> str:
        """The image as a ``LAYOUT:TAG`` reference (skopeo ``oci:`` and oras syntax)."""
        return f"{self.layout}:{self.tag}"


def _layer_tar(index: int, file_sizes: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directory = tarfile.TarInfo(f"layer{index}")
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o755, EPOCH
        tar.addfile(directory)
        for number, size in enumerate(file_sizes):
            info = tarfile.TarInfo(f"layer{index}/file{number}.bin")
            info.size, info.mode, info.mtime = size, 0o644, EPOCH
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()


def write_layout(layout: Path, blobs: list[Blob], manifest: Blob, tag: str) -> None:
    """Write ``blobs`` and ``manifest`` as an OCI layout whose index names ``tag``."""
    blob_dir = layout / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for blob in [*blobs, manifest]:
        (blob_dir / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [manifest.descriptor(annotations={REF_NAME: tag})],
    }
    (layout / "index.json").write_bytes(canonical_json(index))
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))


def build_image(
    layout: Path,
    *,
    tag: str = "latest",
    layer_files: tuple[tuple[int, ...], ...] = ((1024, 4096), (64 * 1024, 300 * 1024, 7)),
) -> OciImage:
    """Write a linux/amd64 image of ``len(layer_files)`` random layers to ``layout``."""
    tars = [_layer_tar(i, sizes) for i, sizes in enumerate(layer_files)]
    layers = tuple(Blob(LAYER, gzip.compress(tar, mtime=0)) for tar in tars)
    config = Blob(
        CONFIG,
        canonical_json(
            {
                "created": CREATED,
                "architecture": "amd64",
                "os": "linux",
                "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(t) for t in tars]},
                "history": [{"created": CREATED, "created_by": "tests/clients/images.py"}]
                * len(tars),
            }
        ),
    )
    manifest = Blob(
        MANIFEST,
        canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
            }
        ),
    )
    write_layout(layout, [config, *layers], manifest, tag)
    return OciImage(layout=layout, tag=tag, manifest=manifest, config=config, layers=layers)


@dataclass(frozen=True)
class LayoutImage:
    """One image manifest read back from an OCI layout, with the blobs it names."""

    manifest: Blob
    blobs: dict[str, bytes]

    @property
    def manifest_digest(self) -> str:
        return self.manifest.digest

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.manifest.data)
        return parsed


def read_blob(layout: Path, digest: str) -> bytes:
    """Read a blob of ``layout`` and check that its content matches ``digest``."""
    algorithm, _, hex_digest = digest.partition(":")
    data = (layout / "blobs" / algorithm / hex_digest).read_bytes()
    if sha256_digest(data) != digest:
        raise AssertionError(f"blob {digest} in {layout} does not match its digest")
    return data


def read_image(layout: Path, tag: str | None = None) -> LayoutImage:
    """Read the image tagged ``tag`` (or the only one) from ``layout``."""
    index = json.loads((layout / "index.json").read_bytes())
    entries = index["manifests"]
    if tag is not None:
        entries = [m for m in entries if m.get("annotations", {}).get(REF_NAME) == tag]
    if len(entries) != 1:
        raise AssertionError(f"{layout}: expected one manifest for tag {tag!r}, got {entries}")
    entry = entries[0]
    manifest = Blob(entry["mediaType"], read_blob(layout, entry["digest"]))
    parsed = json.loads(manifest.data)
    descriptors = [parsed["config"], *parsed.get("layers", [])]
    blobs = {d["digest"]: read_blob(layout, d["digest"]) for d in descriptors}
    return LayoutImage(manifest=manifest, blobs=blobs)
