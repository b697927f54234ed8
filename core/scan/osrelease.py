"""Operating-system detection from ``os-release`` and the distributions' release files."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from core.scan.packages import OsRelease

OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
RELEASE_FILES = ("etc/alpine-release", "etc/debian_version", "etc/redhat-release")


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines, shell-quoted values unquoted; comments and junk skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            words = [raw.strip("\"'")]
        values[key] = " ".join(words)
    return values


def detect_os(read: Callable[[str], bytes | None]) -> OsRelease | None:
    """The image's OS, reading files through ``read`` (which resolves symlinks)."""
    for path in OS_RELEASE_PATHS:
        data = read(path)
        if data is None:
            continue
        values = parse_os_release(data.decode("utf-8", "replace"))
        if "ID" in values:
            version = values.get("VERSION_ID", "")
            if values["ID"] == "alpine":
                alpine = read("etc/alpine-release")
                version = alpine.decode().strip() if alpine else version
            return OsRelease(
                id=values["ID"].lower(),
                version_id=version,
                version_codename=values.get("VERSION_CODENAME", ""),
                id_like=tuple(values.get("ID_LIKE", "").lower().split()),
                pretty_name=values.get("PRETTY_NAME", ""),
            )
    alpine = read("etc/alpine-release")
    if alpine is not None:
        return OsRelease(id="alpine", version_id=alpine.decode("utf-8", "replace").strip())
    debian = read("etc/debian_version")
    if debian is not None:
        major = debian.decode("utf-8", "replace").strip().split(".")[0]
        return OsRelease(id="debian", version_id=major if major.isdigit() else "")
    return None
