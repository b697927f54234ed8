"""Analyze an image (or each platform of an index) into its OS and packages.

Layers stream from the :class:`ImageSource` in order, base first; every digest is
checked (manifests, config, each layer, and each layer's ``diff_id`` when the config
lists it). Every limit of :class:`ScanSettings` applies; a violation ends that
platform's analysis with a failure reason and leaves the others alone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.scan import dpkg, gobinary, java, npm, python_pkgs, rpm
from core.scan.apk import INSTALLED as APK_INSTALLED
from core.scan.collect import collect
from core.scan.errors import ScanFailedError
from core.scan.fsview import FileView
from core.scan.layers import Interest, KeptBytes, Reader, StreamParser, read_layer
from core.scan.osrelease import OS_RELEASE_PATHS, RELEASE_FILES
from core.scan.packages import OsRelease, Package
from core.scan.source import ImageSource
from core.scan.streams import Budget, LayerStream
from core.scan_settings import ScanSettings

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
_MAX_CONFIG = 8 * 1024 * 1024
_MAX_INDEX_DEPTH = 2
_KEPT_NAMES = frozenset({*OS_RELEASE_PATHS, *RELEASE_FILES, APK_INSTALLED})


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@dataclass(frozen=True)
class ImageAnalysis:
    """The result for one image manifest: packages, or the reason the analysis failed."""

    manifest_digest: str
    platform: Platform | None
    os: OsRelease | None
    packages: tuple[Package, ...]
    failure: str | None = None


def _check(digest: str, data: bytes, what: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if (
        algorithm not in {"sha256", "sha512"}
        or hashlib.new(algorithm, data).hexdigest() != expected
    ):
        raise ScanFailedError(f"{what} {digest} does not match its digest")


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ScanFailedError(f"{what} is not valid JSON") from exc
    if not isinstance(document, dict):
        raise ScanFailedError(f"{what} is not a JSON object")
    return document


def _blob(source: ImageSource, digest: str, limit: int, what: str) -> bytes:
    data = bytearray()
    chunks = source.blob(digest)
    while True:
        try:
            chunk = next(chunks, None)
        except Exception as exc:
            raise ScanFailedError(f"{what} {digest} could not be read: {exc}") from exc
        if chunk is None:
            break
        data += chunk
        if len(data) > limit:
            raise ScanFailedError(f"{what} {digest} is too large")
    _check(digest, bytes(data), what)
    return bytes(data)


class Analyzer:
    """Analyzes images within the bounds of one :class:`ScanSettings`."""

    def __init__(self, settings: ScanSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        limits = java.ArchiveLimits(
            settings.max_archive_depth,
            settings.max_archive_entries,
            settings.max_archive_bytes,
            settings.max_archive_ratio,
            settings.max_file_bytes,
            settings.spool_bytes,
        )
        java_parse = java.java_parser(limits)

        def rpm_parse(path: str, reader: Reader, size: int) -> tuple[Any, ...]:
            return rpm.read_rpmdb(path, reader, size, settings.max_file_bytes)

        def parser_for(path: str) -> StreamParser | None:
            if rpm.is_rpmdb(path):
                return rpm_parse
            return java_parse if java.is_archive(path) else None

        self._interest = Interest(
            keep=_keep,
            parser_for=parser_for,
            sniff_magic=gobinary.ELF_MAGIC,
            sniff_parser=gobinary.parse_go_binary,
        )

    def analyze(self, source: ImageSource, digest: str) -> list[ImageAnalysis]:
        """Analyze the manifest ``digest``: one result, or one per platform of an index.

        Raises :class:`ScanFailedError` when the top-level manifest is missing or invalid.
        """
        return self._analyze(source, digest, None, 0)

    def _analyze(
        self, source: ImageSource, digest: str, platform: Platform | None, depth: int
    ) -> list[ImageAnalysis]:
        data = source.manifest(digest)
        if data is None:
            raise ScanFailedError(f"manifest {digest} is not stored")
        _check(digest, data, "manifest")
        document = _json(data, f"manifest {digest}")
        if document.get("mediaType") in INDEX_TYPES or (
            "manifests" in document and "layers" not in document
        ):
            if depth >= _MAX_INDEX_DEPTH:
                raise ScanFailedError(f"index {digest} nests indexes too deeply")
            results = []
            for entry in _platform_entries(document):
                child, child_platform = str(entry["digest"]), _platform(entry.get("platform"))
                try:
                    results += self._analyze(source, child, child_platform, depth + 1)
                except ScanFailedError as exc:
                    results.append(ImageAnalysis(child, child_platform, None, (), exc.reason))
            return results
        try:
            os_release, packages = self._image(source, document, digest)
        except ScanFailedError as exc:
            return [ImageAnalysis(digest, platform, None, (), exc.reason)]
        return [ImageAnalysis(digest, platform, os_release, tuple(packages))]

    def _image(
        self, source: ImageSource, manifest: dict[str, Any], digest: str
    ) -> tuple[OsRelease | None, list[Package]]:
        settings = self._settings
        config_digest = str((manifest.get("config") or {}).get("digest", ""))
        diff_ids: list[str] = []
        if config_digest:
            config = _json(_blob(source, config_digest, _MAX_CONFIG, "config"), "image config")
            rootfs = config.get("rootfs") or {}
            diff_ids = [str(d) for d in rootfs.get("diff_ids") or []]
        budget = Budget(
            settings.max_uncompressed_bytes,
            settings.max_entries,
            self._clock() + settings.max_seconds,
            self._clock,
        )
        kept = KeptBytes(settings.max_kept_bytes)
        view = FileView(settings.max_symlink_hops)
        layers = manifest.get("layers") or []
        if not isinstance(layers, list):
            raise ScanFailedError(f"manifest {digest} has no layer list")
        for index, layer in enumerate(layers):
            layer_digest = str(layer.get("digest", ""))
            compression = _compression(str(layer.get("mediaType", "")), layer_digest)
            expected = diff_ids[index] if index < len(diff_ids) else ""
            checked = expected.startswith("sha256:")
            stream = LayerStream(
                source.blob(layer_digest), layer_digest, compression, budget, diff_id=checked
            )
            try:
                tree = read_layer(
                    stream, index, view, self._interest, budget, kept, settings.max_file_bytes
                )
                diff_id = stream.diff_id()
            finally:
                stream.close()
            if checked and expected[7:] != diff_id:
                raise ScanFailedError(
                    f"layer {layer_digest} does not match the config's diff_id {expected}"
                )
            view.apply(tree)
            budget.check_time()
        view.check_links()
        return collect(view, settings.max_json_depth)


def _keep(path: str) -> bool:
    return (
        path in _KEPT_NAMES
        or dpkg.is_dpkg_file(path)
        or python_pkgs.is_python_metadata(path)
        or npm.is_npm_file(path)
    )


def _compression(media_type: str, digest: str) -> str:
    if media_type.endswith(("+gzip", ".tar.gzip", "rootfs.diff.tar.gzip")):
        return "gzip"
    if media_type.endswith((".tar", "layer.v1.tar", ".tar+", "rootfs.diff.tar")):
        return "none"
    raise ScanFailedError(f"layer {digest} has an unsupported media type {media_type!r}")


def _platform(value: Any) -> Platform | None:
    if not isinstance(value, dict):
        return None
    return Platform(
        str(value.get("os", "")), str(value.get("architecture", "")), str(value.get("variant", ""))
    )


def _platform_entries(index: dict[str, Any]) -> list[dict[str, Any]]:
    """Image entries of an index; Docker attestation manifests (unknown/unknown) skipped."""
    entries = []
    for entry in index.get("manifests") or []:
        if not isinstance(entry, dict) or not entry.get("digest"):
            continue
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        platform = entry.get("platform") or {}
        if platform.get("os") == "unknown" and platform.get("architecture") == "unknown":
            continue
        entries.append(entry)
    return entries


def platform_members(index: dict[str, Any]) -> list[tuple[str, Platform | None]]:
    """(digest, platform) of each image of ``index``, the ones an analysis scans."""
    return [(str(e["digest"]), _platform(e.get("platform"))) for e in _platform_entries(index)]
