"""Turn the final filesystem view into packages: OS databases first, then languages.

Files an OS package owns (dpkg ``.list`` files, apk ``R`` lines, rpm file lists) are not
reported again by the language analyzers: a Debian ``python3-yaml`` stays one package.
"""

from __future__ import annotations

from collections.abc import Iterator

from core.scan import apk, dpkg, npm, python_pkgs, rpm
from core.scan.fsview import FileView, Node, NodeKind
from core.scan.jsondepth import load_bounded
from core.scan.osrelease import detect_os
from core.scan.packages import OS_TYPES, OsRelease, Package, PackageType


def _files(view: FileView) -> Iterator[tuple[str, Node]]:
    for path, node in view.walk():
        if node.kind is NodeKind.FILE and (node.content is not None or node.parsed):
            yield path, node


def read_file(view: FileView, path: str) -> bytes | None:
    resolved = view.resolve(path)
    if resolved is None or resolved[1].kind is not NodeKind.FILE:
        return None
    return resolved[1].content


def collect(view: FileView, max_json_depth: int) -> tuple[OsRelease | None, list[Package]]:
    """The OS and every package of the view, sorted by type, name, version and location."""
    os_release = detect_os(lambda path: read_file(view, path))
    files = sorted(_files(view), key=lambda item: item[0])
    owned_lists = {
        path.rsplit("/", 1)[-1].removesuffix(".list"): dpkg.parse_list(node.content.decode())
        for path, node in files
        if path.startswith(dpkg.INFO) and path.endswith(".list") and node.content is not None
    }
    system: list[Package] = []
    language: list[Package] = []
    for path, node in files:
        text = node.content.decode("utf-8", "replace") if node.content is not None else ""
        if path == dpkg.STATUS or (path.startswith(dpkg.STATUS_D) and dpkg.is_dpkg_file(path)):
            system += dpkg.parse_dpkg(text, path, os_release, owned_lists)
        elif path == apk.INSTALLED:
            system += apk.parse_apk(text, path, os_release)
        elif node.parsed and isinstance(node.parsed[0], rpm.RpmEntry):
            system += rpm.rpm_packages(node.parsed, path, os_release)
        elif node.parsed:
            language += [item for item in node.parsed if isinstance(item, Package)]
        elif python_pkgs.is_python_metadata(path):
            found = python_pkgs.parse_python(text, path)
            language += [found] if found else []
        elif npm.is_npm_file(path) and node.content is not None:
            language += _npm(node.content, path, max_json_depth)
    language = _drop_owned(view, system, _drop_lock_duplicates(language))
    packages = sorted(
        set(system + language), key=lambda p: (p.type, p.name, p.version, p.location, p.purl)
    )
    return os_release, packages


def _npm(content: bytes, path: str, max_depth: int) -> list[Package]:
    document = load_bounded(content, path, max_depth)
    if path.rsplit("/", 1)[-1] == "package.json":
        found = npm.parse_package_json(document, path)
        return [found] if found else []
    return npm.parse_lockfile(document, path)


def _drop_lock_duplicates(language: list[Package]) -> list[Package]:
    """Lockfile entries are dropped when an installed ``package.json`` names them."""
    installed = {
        (p.name, p.version)
        for p in language
        if p.type is PackageType.NPM and p.location.endswith("/package.json")
    }
    return [
        p
        for p in language
        if p.type is not PackageType.NPM
        or p.location.endswith("/package.json")
        or (p.name, p.version) not in installed
    ]


def _drop_owned(view: FileView, system: list[Package], language: list[Package]) -> list[Package]:
    if not language:
        return language
    locations = {p.location.split("!", 1)[0] for p in language}
    names = {location.rsplit("/", 1)[-1] for location in locations}
    owned: set[str] = set()
    for package in system:
        if package.type not in OS_TYPES:
            continue
        for path in package.files:
            if path.rsplit("/", 1)[-1] in names:
                resolved = view.resolve(path, follow_final=False)
                owned.add(resolved[0] if resolved else path)
    if not owned:
        return language
    return [p for p in language if p.location.split("!", 1)[0] not in owned]
