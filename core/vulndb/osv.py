"""OSV records (schema 1.7): the parts import and matching read, validated on the way in."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.vulndb.versions import ecosystem_base

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
_PEP503 = re.compile(r"[-_.]+")


class InvalidRecordError(ValueError):
    """A document that is not a usable OSV record (the import skips and counts it)."""


@dataclass(frozen=True)
class AffectedEntry:
    """One ``affected[]`` entry, keyed the way lookups query it."""

    ecosystem: str
    name: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class OsvRecord:
    id: str
    modified: datetime
    withdrawn: bool
    aliases: tuple[str, ...]
    summary: str
    affected: tuple[AffectedEntry, ...]
    document: dict[str, Any]


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def lookup_name(ecosystem: str, name: str) -> str:
    """The name a package is stored and queried under (PyPI names PEP 503-normalised)."""
    if ecosystem_base(ecosystem) == "PyPI":
        return _PEP503.sub("-", name).lower()
    return name


def parse_record(data: bytes | str | dict[str, Any]) -> OsvRecord:
    """Parse and check an OSV document.

    Raises:
        InvalidRecordError: No valid ``id`` or ``modified``, or malformed ``affected``.
    """
    try:
        document = json.loads(data) if isinstance(data, bytes | str) else data
    except ValueError as exc:
        raise InvalidRecordError("not JSON") from exc
    if not isinstance(document, dict):
        raise InvalidRecordError("not a JSON object")
    record_id = document.get("id")
    if not isinstance(record_id, str) or not _ID.match(record_id):
        raise InvalidRecordError("no valid id")
    try:
        modified = parse_timestamp(str(document["modified"]))
    except (KeyError, ValueError) as exc:
        raise InvalidRecordError(f"{record_id}: no valid modified time") from exc
    aliases = [a for a in document.get("aliases") or [] if isinstance(a, str)]
    aliases += [u for u in document.get("upstream") or [] if isinstance(u, str)]
    entries = []
    for item in document.get("affected") or []:
        package = item.get("package") if isinstance(item, dict) else None
        if not isinstance(package, dict):
            continue
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if isinstance(ecosystem, str) and isinstance(name, str) and ecosystem and name:
            entries.append(AffectedEntry(ecosystem, lookup_name(ecosystem, name), item))
    return OsvRecord(
        id=record_id,
        modified=modified,
        withdrawn=bool(document.get("withdrawn")),
        aliases=tuple(dict.fromkeys(aliases)),
        summary=str(document.get("summary") or "")[:1000],
        affected=tuple(entries),
        document=document,
    )
