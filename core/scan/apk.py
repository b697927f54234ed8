"""apk databases (``lib/apk/db/installed``): Alpine, Wolfi, Chainguard."""

from __future__ import annotations

from packageurl import PackageURL

from core.scan.packages import OsRelease, Package, PackageType

INSTALLED = "lib/apk/db/installed"


def parse_apk(text: str, location: str, os: OsRelease | None) -> list[Package]:
    """One package per stanza (``P`` name, ``V`` version, ``o`` origin, ``F``/``R`` files)."""
    packages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        files: list[str] = []
        directory = ""
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if not sep or len(key) != 1:
                continue
            if key == "F":
                directory = value
            elif key == "R":
                files.append(f"{directory}/{value}" if directory else value)
            elif key not in fields:
                fields[key] = value
        name, version = fields.get("P"), fields.get("V")
        if not name or not version:
            continue
        qualifiers = {"arch": fields["A"]} if fields.get("A") else {}
        if os is not None and os.version_id:
            qualifiers["distro"] = f"{os.id}-{os.version_id}"
        namespace = os.id if os is not None else "alpine"
        purl = PackageURL("apk", namespace, name, version, qualifiers).to_string()
        licenses = (fields["L"],) if fields.get("L") else ()
        packages.append(
            Package(
                PackageType.APK,
                name,
                version,
                purl,
                location,
                fields.get("o") or name,
                version,
                licenses,
                tuple(files),
            )
        )
    return packages
