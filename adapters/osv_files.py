"""Where OSV exports are read from: a local directory or file, or an HTTPS URL prefix.

A location is either a directory (or ``file://`` URL) holding ``all.zip`` and
``modified_id.csv``, the path of a zip itself (full imports only), or an ``https://``
prefix such as ``https://osv-vulnerabilities.storage.googleapis.com/Debian``. Downloads
go to bounded temporary files that :meth:`release` removes; local files are never
touched. The URL's shape is checked against the outbound policy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

import httpx

from core.outbound import OutboundPolicy, parse_destination

_CHUNK = 1024 * 1024


class OsvFiles:
    """Fetches export files; see the module docstring for locations."""

    def __init__(
        self,
        policy: OutboundPolicy,
        max_download_bytes: int = 4 * 1024 * 1024 * 1024,
        timeout_seconds: float = 600.0,
    ) -> None:
        self._policy = policy
        self._max = max_download_bytes
        self._timeout = timeout_seconds
        self._downloads: set[Path] = set()

    def fetch(self, location: str, filename: str) -> Path | None:
        if location.startswith(("https://", "http://")):
            return self._download(location.rstrip("/") + "/" + filename)
        local = Path(location.removeprefix("file://"))
        if local.is_file():
            return local if filename == "all.zip" and local.suffix == ".zip" else None
        candidate = local / filename
        return candidate if candidate.is_file() else None

    def release(self, path: Path) -> None:
        if path in self._downloads:
            self._downloads.discard(path)
            path.unlink(missing_ok=True)

    def _download(self, url: str) -> Path | None:
        destination = parse_destination(url, self._policy)
        handle = tempfile.NamedTemporaryFile(prefix="osv-", delete=False)  # noqa: SIM115
        path = Path(handle.name)
        try:
            with handle, httpx.stream("GET", destination.url, timeout=self._timeout) as response:
                if response.status_code == httpx.codes.NOT_FOUND:
                    path.unlink(missing_ok=True)
                    return None
                response.raise_for_status()
                self._copy(url, response, handle)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._downloads.add(path)
        return path

    def _copy(self, url: str, response: httpx.Response, handle: IO[bytes]) -> None:
        written = 0
        for chunk in response.iter_bytes(_CHUNK):
            written += len(chunk)
            if written > self._max:
                raise ValueError(f"{url} is larger than the download limit")
            handle.write(chunk)
