"""The registry's state as configuration documents, read through the management API.

``read_state`` lists what the caller can see (a system administrator sees everything):
local users, registry endpoints, P2P instances, scanners, the system CVE allowlist,
projects with their quota, retention, immutability, trust, scan, allowlist, proxy and
scanner settings, members,
robots, webhooks, preheat policies and promotion rules, replication policies, system robots, system
webhooks and trusted issuers. A write-only secret the
registry holds is read as ``stored``. Each is turned into the document a file would hold
for it, so plan compares like with like and export writes exactly this. Database ids
(needed to update or delete members, robots, webhooks, policies, instances and issuers)
are kept beside, by natural key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cli.api_client import ApiError, Connection
from cli.apply_promotion import rule_document
from cli.apply_security import allowlist_body
from core.ascode_models import (
    API_VERSION,
    DOCUMENT,
    PROJECT_SINGLETONS,
    ROBOT_PREFIX,
)
from core.ascode_outbound import STORED
from core.ascode_plan import default_singleton

PAGE = 100
FORBIDDEN = 403
NOT_FOUND = 404
_ROTATE_FLAGS = ("auth_header_rotate", "secret_rotate", "access_credential_rotate")
_ENDPOINT_FIELDS = ("url", "type", "credential", "username", "ca_bundle", "insecure", "realm_hosts")
_WEBHOOK_FIELDS = ("url", "events", "payload_format", "enabled")
_INSTANCE_FIELDS = (
    "vendor",
    "endpoint",
    "description",
    "auth_mode",
    "username",
    "enabled",
    "default",
    "insecure",
)


@dataclass
class LiveState:
    docs: list[Any] = field(default_factory=list)
    ids: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, data: dict[str, Any], object_id: int | None = None) -> None:
        doc = DOCUMENT.validate_python({"apiVersion": API_VERSION, **data})
        self.docs.append(doc)
        if object_id is not None:
            self.ids[doc.kind, doc.key()] = object_id

    def exported(self) -> list[dict[str, Any]]:
        """The documents export writes: defaults (no quota, no rules) left out."""
        out = []
        for doc in self.docs:
            if doc.kind in PROJECT_SINGLETONS and doc.canonical_spec() == (
                default_singleton(doc.kind, doc.key()).canonical_spec()
            ):
                continue
            data = doc.model_dump(mode="json", by_alias=True, exclude_none=True)
            for flag in _ROTATE_FLAGS:
                data["spec"].pop(flag, None)
            if doc.kind == "Robot" and data["spec"].get("expires_at"):
                data["spec"]["expires_at"] = doc.canonical_spec()["expires_at"]
            if doc.kind == "CveAllowlist":
                data["spec"] = allowlist_body(doc)
                if not data["metadata"]:
                    del data["metadata"]  # the system allowlist
            out.append(data)
        return out


def _pages(connection: Connection, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    last: str | None = None
    while True:
        page = connection.call("GET", path, limit=PAGE, last=last)
        items.extend(page["items"])
        if "next" not in page:
            return items
        last = page.get("next")
        if not last:
            return items


def _admin_list(connection: Connection, path: str) -> list[dict[str, Any]]:
    """An administrators' list; empty for a caller who may not read it (403)."""
    try:
        return _pages(connection, path)
    except ApiError as exc:
        if exc.problem.get("status") == FORBIDDEN:
            return []
        raise


def _readable(connection: Connection, path: str, absent: frozenset[int] = frozenset()) -> Any:
    """A read the caller may be refused (403), or of a thing that may be absent.

    ``None`` on 403 or on one of the ``absent`` statuses.
    """
    try:
        return connection.call("GET", path)
    except ApiError as exc:
        if exc.problem.get("status") in absent | {FORBIDDEN}:
            return None
        raise


def _readable_list(connection: Connection, path: str) -> list[dict[str, Any]] | None:
    """Every item of a list the caller may be refused (403): ``None`` then."""
    try:
        return _pages(connection, path)
    except ApiError as exc:
        if exc.problem.get("status") == FORBIDDEN:
            return None
        raise


#: Fields of a replication policy's API answer that are not its spec.
_POLICY_META = frozenset({"id", "name", "created_at", "updated_at"})
#: Fields of a preheat policy's API answer that are not its spec.
_PREHEAT_META = _POLICY_META | {"project", "created_by", "project_criteria"}


def read_state(connection: Connection) -> LiveState:
    """Everything the file could name, as the caller sees it (one read per resource).

    A caller who is not a system administrator sees no users, system robots or
    trusted issuers (those lists answer 403), nor the system CVE allowlist: plan then
    treats them as absent.
    """
    state = LiveState()
    users = _readable_list(connection, "/api/v1/users")
    for user in users or []:
        spec = {k: user.get(k) for k in ("email", "full_name", "disabled")}
        state.add({"kind": "User", "metadata": {"name": user["username"]}, "spec": spec})
    for endpoint in _admin_list(connection, "/api/v1/registries"):
        spec = {k: endpoint[k] for k in _ENDPOINT_FIELDS}
        if endpoint["has_secret"] and endpoint["credential"] != "none":
            spec["secret"] = STORED
        state.add(
            {"kind": "RegistryEndpoint", "metadata": {"name": endpoint["name"]}, "spec": spec}
        )
    _read_instances(connection, state)
    _read_scanners(connection, state)
    for project in _pages(connection, "/api/v1/projects"):
        _read_project(connection, state, project)
    for policy in _admin_list(connection, "/api/v1/replication/policies"):
        spec = {k: v for k, v in policy.items() if k not in _POLICY_META}
        state.add(
            {"kind": "ReplicationPolicy", "metadata": {"name": policy["name"]}, "spec": spec},
            policy["id"],
        )
    if users is not None:  # anyone reads the system allowlist; only administrators set it
        allowlist = connection.call("GET", "/api/v1/scan-allowlist")
        state.add({"kind": "CveAllowlist", "spec": {"items": allowlist["items"]}})
    for robot in _admin_list(connection, "/api/v1/robots"):
        state.add(_robot(robot, None), robot["id"])
    _read_webhooks(state, _readable_list(connection, "/api/v1/webhooks"), None)
    for issuer in _admin_list(connection, "/api/v1/trusted-issuers"):
        spec = {
            k: issuer[k]
            for k in (
                "jwks_url",
                "discovery_url",
                "audience",
                "subject_claim",
                "subject_pattern",
                "permissions",
            )
        }
        state.add(
            {"kind": "TrustedIssuer", "metadata": {"name": issuer["issuer"]}, "spec": spec},
            issuer["id"],
        )
    return state


def _read_instances(connection: Connection, state: LiveState) -> None:
    """The P2P provider instances (system administrators'; a secret held reads ``stored``)."""
    for instance in _admin_list(connection, "/api/v1/p2p/instances"):
        spec = {k: instance[k] for k in _INSTANCE_FIELDS}
        if instance["has_secret"] and instance["auth_mode"] != "none":
            spec["secret"] = STORED
        state.add(
            {"kind": "P2PInstance", "metadata": {"name": instance["name"]}, "spec": spec},
            instance["id"],
        )


def _read_scanners(connection: Connection, state: LiveState) -> None:
    """The scanner registrations (system administrators'; a credential held reads ``stored``)."""
    for scanner in _admin_list(connection, "/api/v1/scanners"):
        spec = {k: scanner[k] for k in ("url", "description", "auth", "skip_cert_verify")}
        spec |= {"disabled": scanner["disabled"], "default": scanner["is_default"]}
        if scanner["has_access_credential"] and scanner["auth"] != "none":
            spec["access_credential"] = STORED
        state.add({"kind": "Scanner", "metadata": {"name": scanner["name"]}, "spec": spec})


def _read_project(connection: Connection, state: LiveState, project: dict[str, Any]) -> None:
    name = project["name"]
    base = f"/api/v1/projects/{name}"
    state.add(
        {"kind": "Project", "metadata": {"name": name}, "spec": {"public": project["public"]}}
    )
    quota = connection.call("GET", f"{base}/quota")
    in_project = {"project": name}
    state.add(
        {
            "kind": "Quota",
            "metadata": in_project,
            "spec": {"bytes": quota["bytes"], "artifacts": quota["artifacts"]},
        }
    )
    retention = connection.call("GET", f"{base}/retention")
    state.add({"kind": "RetentionPolicy", "metadata": in_project, "spec": retention})
    immutability = connection.call("GET", f"{base}/immutability")
    state.add({"kind": "ImmutabilityPolicy", "metadata": in_project, "spec": immutability})
    _read_security(connection, state, name)
    proxy = _readable(connection, f"{base}/proxy")
    if proxy is not None:
        state.add({"kind": "ProxyBinding", "metadata": in_project, "spec": proxy})
    scanner = _readable(connection, f"{base}/scanner")
    if scanner is not None:
        spec = {"scanner": scanner["scanner"]}
        state.add({"kind": "ProjectScanner", "metadata": in_project, "spec": spec})
    _read_webhooks(state, _readable_list(connection, f"{base}/webhooks"), name)
    for policy in _readable_list(connection, f"{base}/preheat/policies") or []:
        spec = {k: v for k, v in policy.items() if k not in _PREHEAT_META}
        meta = {"project": name, "name": policy["name"]}
        state.add({"kind": "PreheatPolicy", "metadata": meta, "spec": spec}, policy["id"])
    for rule in _readable_list(connection, f"{base}/promotion-rules") or []:
        state.add(rule_document(name, rule), rule["id"])
    for robot in _pages(connection, f"{base}/robots"):
        state.add(_robot(robot, name), robot["id"])
    for member in _pages(connection, f"{base}/members"):
        meta = {"project": name, member["kind"]: member["name"]}
        state.add(
            {"kind": "Member", "metadata": meta, "spec": {"role": member["role"]}}, member["id"]
        )


def _read_security(connection: Connection, state: LiveState, project: str) -> None:
    """A project's trust policy (when it has one), scan policy and CVE allowlist."""
    base, in_project = f"/api/v1/projects/{project}", {"project": project}
    trust = _readable(connection, f"{base}/trust/policy", frozenset({NOT_FOUND}))
    if trust is not None:
        state.add({"kind": "TrustPolicy", "metadata": in_project, "spec": trust["document"]})
    scan = _readable(connection, f"{base}/scan-policy")
    if scan is not None:
        state.add({"kind": "ScanPolicy", "metadata": in_project, "spec": scan})
    allowlist = _readable(connection, f"{base}/scan-allowlist")
    if allowlist is not None:
        spec = {"items": allowlist["items"]}
        state.add({"kind": "CveAllowlist", "metadata": in_project, "spec": spec})


def _read_webhooks(
    state: LiveState, hooks: list[dict[str, Any]] | None, project: str | None
) -> None:
    for hook in hooks or []:
        spec = {k: hook[k] for k in _WEBHOOK_FIELDS}
        if hook["has_auth_header"]:
            spec["auth_header"] = STORED
        meta = {"name": hook["name"], "project": project}
        state.add({"kind": "Webhook", "metadata": meta, "spec": spec}, hook["id"])


def _robot(robot: dict[str, Any], project: str | None) -> dict[str, Any]:
    full = str(robot["name"])
    short = full.removeprefix(f"{ROBOT_PREFIX}{project}+" if project else ROBOT_PREFIX)
    prefix = f"{project}/" if project else ""
    permissions = [
        {"repository": str(p["repository"]).removeprefix(prefix), "actions": p["actions"]}
        for p in robot["permissions"]
    ]
    meta: dict[str, Any] = {"name": short}
    if project:
        meta["project"] = project
    return {
        "kind": "Robot",
        "metadata": meta,
        "spec": {
            "permissions": permissions,
            "expires_at": robot.get("expires_at"),
            "disabled": robot.get("disabled", False),
        },
    }
