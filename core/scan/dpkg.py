"""dpkg databases: ``var/lib/dpkg/status`` and distroless ``status.d/<package>`` stanzas."""

from __future__ import annotations

import re

from packageurl import PackageURL

from core.scan.packages import OsRelease, Package, PackageType

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
INFO = "var/lib/dpkg/info/"
_SOURCE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?$")


def is_dpkg_file(path: str) -> bool:
    if path == STATUS:
        return True
    if path.startswith(STATUS_D):
        name = path[len(STATUS_D) :]
        return "/" not in name and not name.endswith(".md5sums")
    return path.startswith(INFO) and path.endswith(".list") and "/" not in path[len(INFO) :]


def stanzas(text: str) -> list[dict[str, str]]:
    """RFC 822-style stanzas; continuation lines are joined to their field with newlines."""
    result: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                result.append(current)
            current, last = {}, ""
        elif line[0] in " \t":
            if last:
                current[last] += "\n" + line.strip()
        else:
            key, sep, value = line.partition(":")
            if sep:
                last = key.strip()
                current[last] = value.strip()
    if current:
        result.append(current)
    return result


def installed(stanza: dict[str, str]) -> bool:
    words = stanza.get("Status", "install ok installed").split()
    return len(words) == 3 and words[2] == "installed"  # noqa: PLR2004 - want flag status


def parse_dpkg(
    text: str, location: str, os: OsRelease | None, owned: dict[str, tuple[str, ...]]
) -> list[Package]:
    """Installed packages of one status file; ``owned`` maps package to its files."""
    packages = []
    for stanza in stanzas(text):
        name, version = stanza.get("Package"), stanza.get("Version")
        if not name or not version or not installed(stanza):
            continue
        source_name, source_version = name, version
        match = _SOURCE.match(stanza.get("Source", ""))
        if match:
            source_name = match.group(1)
            source_version = match.group(2) or version
        arch = stanza.get("Architecture", "")
        qualifiers = {"arch": arch} if arch else {}
        if os is not None and os.version_id:
            qualifiers["distro"] = f"{os.id}-{os.version_id}"
        if source_name != name:
            qualifiers["upstream"] = source_name
        namespace = os.id if os is not None else "debian"
        purl = PackageURL("deb", namespace, name, version, qualifiers).to_string()
        files = owned.get(f"{name}:{arch}") or owned.get(name) or ()
        packages.append(
            Package(
                PackageType.DEB,
                name,
                version,
                purl,
                location,
                source_name,
                source_version,
                files=files,
            )
        )
    return packages


def parse_list(text: str) -> tuple[str, ...]:
    """A ``.list`` file: one absolute path per line."""
    return tuple(line.strip().lstrip("/") for line in text.splitlines() if line.strip("/ \n"))
