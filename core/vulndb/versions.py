"""Version ordering per ecosystem, behind one :func:`version_key`.

Debian and RPM orderings come from ``univers`` (dpkg and rpmvercmp rules: epochs, ``~``,
``^``), PyPI from ``packaging`` (PEP 440), npm and Go from SemVer 2.0 precedence
(``semver``; a leading ``v`` is dropped), Maven from ``univers`` (ComparableVersion).
apk has its own comparator here: ``univers`` reuses Gentoo's rules, which lack apk's
``_cvs``/``_svn``/``_git``/``_hg`` suffixes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import total_ordering
from typing import Any

import semver
from packaging.version import InvalidVersion, Version
from univers.versions import DebianVersion, MavenVersion, RpmVersion

_APK = re.compile(
    r"^(?P<nums>\d+(?:\.\d+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)"
    r"(?:~[0-9a-f]+)?(?:-r(?P<rev>\d+))?$"
)
_APK_SUFFIX = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")
_APK_ORDER = {
    "alpha": 0,
    "beta": 1,
    "pre": 2,
    "rc": 3,
    "cvs": 5,
    "svn": 6,
    "git": 7,
    "hg": 8,
    "p": 9,
}
_APK_RELEASE = (4, 0)


class UnorderableVersionError(ValueError):
    """A version that the ecosystem's rules cannot place (matching skips its ranges)."""


@total_ordering
class _Key:
    """A comparable wrapper around a library's version object."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Key):
            return NotImplemented
        return not bool(self.value < other.value) and not bool(other.value < self.value)

    def __lt__(self, other: _Key) -> bool:
        return bool(self.value < other.value)

    __hash__ = None  # type: ignore[assignment]  # NOTE: equal keys may print differently


def apk_key(version: str) -> tuple[Any, ...]:
    match = _APK.match(version)
    if match is None:
        raise UnorderableVersionError(f"not an apk version: {version!r}")
    numbers = tuple(int(n) for n in match.group("nums").split("."))
    suffixes = [
        (_APK_ORDER[name], int(number or 0))
        for name, number in _APK_SUFFIX.findall(match.group("suffixes"))
    ]
    return (numbers, match.group("letter"), [*suffixes, _APK_RELEASE], int(match.group("rev") or 0))


def semver_key(version: str) -> semver.Version:
    text = version.removeprefix("v")
    try:
        return semver.Version.parse(text, optional_minor_and_patch=True)
    except ValueError as exc:
        raise UnorderableVersionError(f"not a SemVer version: {version!r}") from exc


def _pypi(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion as exc:
        raise UnorderableVersionError(f"not a PEP 440 version: {version!r}") from exc


def _univers(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def build(version: str) -> Any:
        try:
            return kind(version)
        except Exception as exc:  # NOTE: univers raises several types for bad input
            raise UnorderableVersionError(f"cannot order version {version!r}") from exc

    return build


_BUILDERS: dict[str, Callable[[str], Any]] = {
    "Debian": _univers(DebianVersion),
    "Ubuntu": _univers(DebianVersion),
    "Alpine": apk_key,
    "Wolfi": apk_key,
    "Chainguard": apk_key,
    "Rocky Linux": _univers(RpmVersion),
    "AlmaLinux": _univers(RpmVersion),
    "Red Hat": _univers(RpmVersion),
    "SUSE": _univers(RpmVersion),
    "openSUSE": _univers(RpmVersion),
    "PyPI": _pypi,
    "npm": semver_key,
    "Go": semver_key,
    "Maven": _univers(MavenVersion),
}


def ecosystem_base(ecosystem: str) -> str:
    """``Debian:12`` -> ``Debian``; ``Alpine:v3.20`` -> ``Alpine``."""
    return ecosystem.split(":", 1)[0]


def supports(ecosystem: str) -> bool:
    return ecosystem_base(ecosystem) in _BUILDERS


def version_key(ecosystem: str, version: str) -> _Key:
    """A key ordering ``version`` by the rules of ``ecosystem``.

    Raises:
        UnorderableVersionError: The version is not valid in that ecosystem, or the
            ecosystem has no ordering here.
    """
    builder = _BUILDERS.get(ecosystem_base(ecosystem))
    if builder is None:
        raise UnorderableVersionError(f"no version ordering for ecosystem {ecosystem!r}")
    return _Key(builder(version))


def compare(ecosystem: str, left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` orders before, with or after ``right`` in ``ecosystem``."""
    a, b = version_key(ecosystem, left), version_key(ecosystem, right)
    return (a > b) - (a < b)
