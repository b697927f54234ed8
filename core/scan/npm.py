"""npm packages: ``node_modules/**/package.json`` trees and ``package-lock.json`` files."""

from __future__ import annotations

from typing import Any

from packageurl import PackageURL

from core.scan.packages import Package, PackageType

LOCKFILES = ("package-lock.json", ".package-lock.json")


def is_npm_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    if name == "package.json":
        return "node_modules/" in path
    return name in LOCKFILES


def npm_purl(name: str, version: str) -> str:
    namespace, _, short = name.rpartition("/")
    return PackageURL("npm", namespace or None, short, version).to_string()


def _license(document: dict[str, Any]) -> tuple[str, ...]:
    value = document.get("license")
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return (value["type"],)
    return ()


def parse_package_json(document: Any, location: str) -> Package | None:
    if not isinstance(document, dict):
        return None
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    return Package(
        PackageType.NPM,
        name,
        version,
        npm_purl(name, version),
        location,
        licenses=_license(document),
    )


def parse_lockfile(document: Any, location: str) -> list[Package]:
    """Installed packages of a lockfile (v2/v3 ``packages``, v1 ``dependencies``)."""
    if not isinstance(document, dict):
        return []
    found: list[Package] = []
    packages = document.get("packages")
    if isinstance(packages, dict):
        for key, entry in packages.items():
            if not key or not isinstance(entry, dict) or entry.get("link"):
                continue
            name = entry.get("name") or key.rsplit("node_modules/", 1)[-1]
            version = entry.get("version")
            if isinstance(name, str) and isinstance(version, str) and version:
                found.append(
                    Package(PackageType.NPM, name, version, npm_purl(name, version), location)
                )
        return found
    stack = [document.get("dependencies")]
    while stack:
        dependencies = stack.pop()
        if not isinstance(dependencies, dict):
            continue
        for name, entry in dependencies.items():
            if isinstance(entry, dict) and isinstance(entry.get("version"), str):
                version = entry["version"]
                found.append(
                    Package(PackageType.NPM, name, version, npm_purl(name, version), location)
                )
                stack.append(entry.get("dependencies"))
    return found
