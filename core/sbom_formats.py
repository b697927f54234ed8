"""The SBOM formats Moorage writes and the image a document describes.

Apart from the builders (``core.scan_sbom``) so that what only names a format (the
scanner API's media types, the referrers' file names) does not load the CycloneDX and
SPDX libraries: those take about a third of a second of CPU to import, and every API and
worker process would pay it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

CYCLONEDX: Final = "application/vnd.cyclonedx+json"
SPDX: Final = "application/spdx+json"
#: The file name each document is stored under (``org.opencontainers.image.title``).
FILE_NAMES: Final = {CYCLONEDX: "sbom.cdx.json", SPDX: "sbom.spdx.json"}


@dataclass(frozen=True, slots=True)
class SbomSubject:
    """The image a document describes."""

    repository: str
    digest: str
    created: datetime
