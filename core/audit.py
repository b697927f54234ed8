"""Audit events: what one request did, who did it, and the hash chain that seals them.

Each stored event commits to the previous event's hash (``hash = sha256(prev_hash ||
canonical event)``), so editing or deleting any event, or truncating the newest ones,
breaks verification. A retention purge leaves an anchor (the hash of the last purged
event) from which the remaining chain is verified.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Final

from core.pipeline import OCIRoute

GENESIS = "0" * 64
_FIRST_ERROR = 400
PULL_ACTIONS = frozenset({"pull_manifest", "pull_blob"})


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One request as the audit log records it (without its chain fields)."""

    time: datetime
    request_id: str
    actor: str
    actor_kind: str
    auth_method: str
    action: str
    resource: str
    project: str | None
    result: str
    status: int
    client: str
    user_agent: str

    def canonical(self) -> bytes:
        """The bytes the chain hashes (the sorted, compact JSON of :meth:`as_dict`).

        Byte for byte ``json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))``,
        encoded. Written out field by field (with the encoder's own string escaping) because the
        audit writer hashes one per request and ``json.dumps`` with these options builds an
        encoder and a dictionary each time, three times slower; a unit test holds the two
        equal on random events, and :data:`_CANONICAL_ORDER` fails the import if a field is
        added without being written here.
        """
        project = self.project
        return (
            f'{{"action":{_quoted(self.action)},"actor":{_quoted(self.actor)},'
            f'"actor_kind":{_quoted(self.actor_kind)},"auth_method":{_quoted(self.auth_method)},'
            f'"client":{_quoted(self.client)},'
            f'"project":{"null" if project is None else _quoted(project)},'
            f'"request_id":{_quoted(self.request_id)},"resource":{_quoted(self.resource)},'
            f'"result":{_quoted(self.result)},"status":{int.__repr__(self.status)},'
            f'"time":"{iso_time(self.time)}","user_agent":{_quoted(self.user_agent)}}}'
        ).encode()

    def as_dict(self) -> dict[str, object]:
        # NOTE: every field is a scalar, so a flat copy equals ``dataclasses.asdict`` (slower).
        values: dict[str, object] = {name: getattr(self, name) for name in _EVENT_FIELDS}
        values["time"] = iso_time(self.time)
        return values


_EVENT_FIELDS = tuple(field.name for field in fields(AuditEvent))
_quoted = encode_basestring_ascii
#: The fields :meth:`AuditEvent.canonical` writes, in its (sorted) order.
_CANONICAL_ORDER: Final = (
    "action",
    "actor",
    "actor_kind",
    "auth_method",
    "client",
    "project",
    "request_id",
    "resource",
    "result",
    "status",
    "time",
    "user_agent",
)
if tuple(sorted(_EVENT_FIELDS)) != _CANONICAL_ORDER:  # pragma: no cover - a new field
    raise ImportError("AuditEvent.canonical does not write every field of AuditEvent")


@dataclass(frozen=True, slots=True)
class StoredAuditEvent:
    id: int
    event: AuditEvent
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            **self.event.as_dict(),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    project: str | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    checked: int
    problem: str | None = None


def iso_time(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + event.canonical()).hexdigest()


def result_of(status: int) -> str:
    if status < _FIRST_ERROR:
        return "success"
    if status in (401, 403, 429):
        return "denied"
    return "error"


_V2 = re.compile(
    r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs/uploads|blobs|tags/list|referrers)(?:/(?P<arg>[^/]*))?/?$"
)
_VERBS = {
    "GET": "read",
    "HEAD": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}
_V2_ACTIONS = {
    ("manifests", "read"): "pull_manifest",
    ("manifests", "update"): "push_manifest",
    ("manifests", "delete"): "delete_manifest",
    ("blobs", "read"): "pull_blob",
    ("blobs", "delete"): "delete_blob",
    ("tags/list", "read"): "list_tags",
    ("referrers", "read"): "list_referrers",
}


#: The path word of each ``/v2`` endpoint that names a repository.
_ROUTE_KINDS: Final = {
    OCIRoute.MANIFEST: "manifests",
    OCIRoute.BLOB: "blobs",
    OCIRoute.UPLOADS: "blobs/uploads",
    OCIRoute.UPLOAD: "blobs/uploads",
    OCIRoute.TAGS: "tags/list",
    OCIRoute.REFERRERS: "referrers",
}


def classify(method: str, path: str) -> tuple[str, str, str | None]:
    """``(action, resource, project)`` of a request, from its method and path."""
    verb = _VERBS.get(method.upper(), method.lower())
    if path in ("/v2", "/v2/"):
        return "ping", "registry", None
    if path.rstrip("/") == "/v2/_catalog":
        return "catalog", "registry:catalog", None
    match = _V2.match(path)
    if match:
        return _v2_named(verb, match["kind"], match["name"], match["arg"])
    if path.startswith("/auth/"):
        return path.removeprefix("/auth/").replace("/", "_") or "auth", path, None
    return _classify_api(verb, path)


def classify_oci(
    method: str, path: str, route: OCIRoute, name: str | None, arg: str | None
) -> tuple[str, str, str | None]:
    """:func:`classify` of a ``/v2`` request whose endpoint the pipeline matched.

    The same triple as ``classify(method, path)`` for every path, from the route match
    (``api.oci_routes``) instead of a second parse of the path.
    """
    kind = _ROUTE_KINDS.get(route)
    if kind is None or name is None:
        return classify(method, path)
    return _v2_named(_VERBS.get(method.upper(), method.lower()), kind, name, arg)


def _v2_named(verb: str, kind: str, name: str, arg: str | None) -> tuple[str, str, str]:
    """What a ``/v2`` request on repository ``name`` does (``kind``: the path's word)."""
    action = (
        "push_blob" if kind == "blobs/uploads" else _V2_ACTIONS.get((kind, verb), f"{verb}_{kind}")
    )
    return action, f"{name}:{arg}" if arg else name, name.partition("/")[0]


def _classify_api(verb: str, path: str) -> tuple[str, str, str | None]:
    parts = [p for p in path.removeprefix("/api/v1").split("/") if p]
    project = parts[1] if parts[:1] == ["projects"] and len(parts) > 1 else None
    if project is not None and parts[2:3] == ["repositories"]:
        return _classify_repository(verb, parts, project)
    kinds = [p for i, p in enumerate(parts) if i % 2 == 0]
    kind = kinds[-1] if kinds else "api"
    if verb == "read" and len(parts) % 2 == 1:
        verb = "list"
    return f"{verb}_{_singular(kind).replace('-', '_')}", path, project


def _singular(kind: str) -> str:
    return kind[:-3] + "y" if kind.endswith("ies") else kind.rstrip("s")


#: ``<repository>/tags/<tag>``: the fewest path parts that name one tag.
_TAG_PATH_PARTS = 3


def _classify_repository(verb: str, parts: list[str], project: str) -> tuple[str, str, str]:
    # The repository path keeps its slashes: .../repositories/<path>[/tags[/<tag>]],
    # split the way the routes split it (a tag never holds a slash).
    rest = parts[3:]
    names_tag = rest[-2:-1] == ["tags"] and len(rest) >= _TAG_PATH_PARTS
    if names_tag and (verb != "read" or rest[-1] != "tags"):
        return f"{verb}_tag", f"{project}/{'/'.join(rest[:-2])}:{rest[-1]}", project
    if rest[-1:] == ["tags"] and len(rest) > 1:
        return "list_tag", f"{project}/{'/'.join(rest[:-1])}", project
    if not rest:
        return "list_repository" if verb == "read" else f"{verb}_repository", project, project
    return f"{verb}_repository", f"{project}/{'/'.join(rest)}", project
