"""Whether a version is affected, exactly as the OSV schema defines it.

A version is affected by an ``affected[]`` entry when it is listed in ``versions`` or
falls in one of its ``ranges``. For a range: when it has ``limit`` events the version
must be below at least one of them; then the events are walked in the ecosystem's
version order from "not affected": ``introduced <= v`` sets affected, ``fixed <= v``
clears it, ``last_affected < v`` clears it. ``SEMVER`` ranges use SemVer precedence
(without a ``v`` prefix); ``ECOSYSTEM`` ranges the ecosystem's order; ``GIT`` ranges
cannot be evaluated for installed packages and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.vulndb.versions import UnorderableVersionError, semver_key, version_key

_KINDS = ("introduced", "fixed", "last_affected", "limit")


@dataclass(frozen=True)
class Verdict:
    """An affected version, with the fixed version of the range that made it so."""

    fixed: str | None


def _key(range_type: str, ecosystem: str, version: str) -> Any:
    if range_type == "SEMVER":
        return semver_key(version)
    return version_key(ecosystem, version)


def _events(raw: list[Any]) -> list[tuple[str, str]]:
    events = []
    for event in raw:
        if not isinstance(event, dict):
            continue
        for kind in _KINDS:
            value = event.get(kind)
            if isinstance(value, str) and value:
                events.append((kind, value))
                break
    return events


def evaluate_range(version: str, ecosystem: str, range_: dict[str, Any]) -> Verdict | None:
    """The verdict for one range; ``None`` when ``version`` is not affected by it.

    Raises:
        UnorderableVersionError: The version or an event's version cannot be ordered.
    """
    range_type = str(range_.get("type"))
    if range_type not in {"SEMVER", "ECOSYSTEM"}:
        return None
    events = _events(range_.get("events") or [])
    target = _key(range_type, ecosystem, version)
    limits = [value for kind, value in events if kind == "limit"]
    if limits and not any(
        value == "*" or target < _key(range_type, ecosystem, value) for value in limits
    ):
        return None
    ordered = _ordered(events, range_type, ecosystem)
    affected = False
    for key, kind, _value in ordered:
        if kind == "introduced" and (key is None or key <= target):
            affected = True
        elif (kind == "fixed" and key <= target) or (kind == "last_affected" and key < target):
            affected = False
    if not affected:
        return None
    # NOTE: the events are sorted, so the first fix above the version is the lowest.
    fixes = (value for key, kind, value in ordered if kind == "fixed" and target < key)
    return Verdict(next(fixes, None))


def _ordered(
    events: list[tuple[str, str]], range_type: str, ecosystem: str
) -> list[tuple[Any, str, str]]:
    """Events other than ``limit`` with their keys, in version order (``introduced: 0`` first)."""
    ordered = []
    for kind, value in events:
        if kind == "limit":
            continue
        zero = kind == "introduced" and value == "0"
        ordered.append((None if zero else _key(range_type, ecosystem, value), kind, value))
    ordered.sort(key=lambda item: (item[0] is not None, item[0] if item[0] is not None else 0))
    return ordered


def evaluate(version: str, ecosystem: str, affected: dict[str, Any]) -> Verdict | None:
    """The verdict of one ``affected[]`` entry: explicit versions, then every range.

    Ranges whose versions cannot be ordered are skipped (they cannot prove anything).
    """
    verdicts = []
    for range_ in affected.get("ranges") or []:
        if not isinstance(range_, dict):
            continue
        try:
            verdict = evaluate_range(version, ecosystem, range_)
        except UnorderableVersionError:
            continue
        if verdict is not None:
            verdicts.append(verdict)
    if verdicts:
        fixes = [v.fixed for v in verdicts if v.fixed]
        return Verdict(fixes[0] if fixes else None)
    versions = affected.get("versions") or []
    if isinstance(versions, list) and version in versions:
        return Verdict(None)
    return None
