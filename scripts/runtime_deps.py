"""The installed distributions Moorage needs at run time (its dependency closure).

Starts from the ``dependencies`` of ``pyproject.toml`` (not the ``dev`` extra) and follows
each installed distribution's own requirements whose environment markers hold here,
extras included where a requirement names them. Used by ``check_licences.py`` and
``build_sbom.py``, so both speak of the same set: what a production install contains.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    with pyproject.open("rb") as file:
        project = tomllib.load(file)["project"]
    return [Requirement(text) for text in project["dependencies"]]


def _holds(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    if not extras:
        return requirement.marker.evaluate({"extra": ""})
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras)


def runtime_closure(roots: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Canonical name -> installed distribution, for every package the roots pull in.

    A requirement that is not installed raises ``PackageNotFoundError``: the check runs
    against the environment it describes.
    """
    found: dict[str, metadata.Distribution] = {}
    seen_extras: dict[str, frozenset[str]] = {}
    pending = [(r, frozenset(r.extras)) for r in roots if _holds(r, frozenset())]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        known = seen_extras.get(name)
        if known is not None and extras <= known:
            continue
        seen_extras[name] = (known or frozenset()) | extras
        distribution = found.get(name) or metadata.distribution(requirement.name)
        found[name] = distribution
        for text in distribution.requires or []:
            child = Requirement(text)
            if _holds(child, extras):
                pending.append((child, frozenset(child.extras)))
    return found
