"""What an analysis finds: packages with their purl, and the operating system."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PackageType(StrEnum):
    """The purl type of a package, which also names the analyzer that found it."""

    DEB = "deb"
    APK = "apk"
    RPM = "rpm"
    PYPI = "pypi"
    NPM = "npm"
    GOLANG = "golang"
    MAVEN = "maven"


#: Package types installed by the operating system's package manager.
OS_TYPES = frozenset({PackageType.DEB, PackageType.APK, PackageType.RPM})


@dataclass(frozen=True, slots=True)
class Package:
    """One installed package.

    ``source_name``/``source_version`` name the source package of a distro binary
    package (dpkg ``Source``, apk origin, the source rpm); vulnerability data of
    distributions is keyed by them. ``location`` is the file the package was read from
    (a database, a metadata file, a binary, an archive path with ``!`` between nestings).
    """

    type: PackageType
    name: str
    version: str
    purl: str
    location: str
    source_name: str | None = None
    source_version: str | None = None
    licenses: tuple[str, ...] = ()
    #: Files the package owns (OS packages only; absolute paths without the leading ``/``).
    files: tuple[str, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OsRelease:
    """The operating system of an image (``os-release`` and the release files)."""

    id: str
    version_id: str = ""
    version_codename: str = ""
    id_like: tuple[str, ...] = ()
    pretty_name: str = ""
