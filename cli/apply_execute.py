"""Carry a plan out through the management API, all or nothing.

Each change is made by the API calls a person would make (so names, roles, permission
ceilings and audit attribution to the caller hold), and each call that succeeded
records how to undo it. When a call fails (the server refuses a member whose user its
identity provider does not know, the caller lacks a right, the connection breaks), the
calls already made are undone in reverse order and the failure is reported with the
change it belonged to. Secrets of robots and webhooks created are handed back only after
every change succeeded. Webhooks, registry endpoints and proxy bindings are changed by
``cli.apply_outbound``, replication policies by ``cli.apply_replication``, P2P
instances and preheat policies by ``cli.apply_preheat``, promotion rules by
``cli.apply_promotion``, trust policies and CVE
allowlists by ``cli.apply_security``.

Limits of the undo, by design of the order: deletions (``--prune``) come last, so a
failure before them undoes only creations and updates, which are exact. A robot that is
replaced (its permissions changed) or deleted and then restored by an undo gets a new
secret; a deleted project cannot be restored, which is why project deletions run last of
all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cli.api_client import ApiError, Connection
from cli.apply_outbound import OutboundKinds
from cli.apply_preheat import PreheatKinds
from cli.apply_promotion import PromotionKinds
from cli.apply_replication import ReplicationKinds
from cli.apply_scanners import ScannerKinds
from cli.apply_secrets import resolve
from cli.apply_security import SecurityKinds
from core.ascode_plan import Change

Undo = Callable[[], object]
_SINGLETON_PATHS = {
    "Quota": "quota",
    "RetentionPolicy": "retention",
    "ImmutabilityPolicy": "immutability",
    "ScanPolicy": "scan-policy",
}


class ApplyError(Exception):
    """A change failed; everything made before it was undone (``undo_failures`` says what not)."""

    def __init__(self, change: Change, problem: dict[str, Any], undo_failures: list[str]) -> None:
        super().__init__(f"{change.describe()}: {problem.get('detail') or problem}")
        self.change, self.problem, self.undo_failures = change, problem, undo_failures


@dataclass
class Executor(
    OutboundKinds, ReplicationKinds, PreheatKinds, PromotionKinds, SecurityKinds, ScannerKinds
):
    connection: Connection
    ids: dict[tuple[str, str], int]
    secrets: dict[str, str] = field(default_factory=dict)
    _passwords: dict[str, str] = field(default_factory=dict)
    _undo: list[tuple[str, Undo]] = field(default_factory=list)
    _sent: dict[tuple[str, str], str] = field(default_factory=dict)

    def resolve_secrets(self, changes: list[Change]) -> list[str]:
        """Read every secret reference the changes need, before any call; the problems."""
        problems = []
        for change in changes:
            if change.kind == "User" and change.action == "create":
                try:
                    self._passwords[change.key] = resolve(change.after.spec.password)
                except ValueError as exc:
                    problems.append(f"User {change.key}: spec.password: {exc}")
            problems.extend(self.resolve_outbound(change))
        return problems

    def run(self, changes: list[Change]) -> None:
        """Make every change, or none (see the module docstring)."""
        for change in changes:
            try:
                self._apply(change)
            except Exception as exc:  # whatever broke, what was done before is undone
                problem = exc.problem if isinstance(exc, ApiError) else {"detail": repr(exc)}
                self.secrets.clear()
                raise ApplyError(change, problem, self._rollback()) from exc

    def _rollback(self) -> list[str]:
        failures = []
        for what, undo in reversed(self._undo):
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - every other undo is still tried
                failures.append(f"{what}: {exc}")
        self._undo.clear()
        return failures

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self.connection.call(method, path, body)

    def _apply(self, change: Change) -> None:
        handler = getattr(self, f"_{change.kind.lower()}")
        handler(change)

    # --- kinds -------------------------------------------------------------------------

    def _user(self, change: Change) -> None:
        name = change.key
        if change.action == "create":
            spec = change.after.spec
            body = {
                "username": name,
                "password": self._passwords[name],
                "email": spec.email,
                "full_name": spec.full_name,
            }
            self._call("POST", "/api/v1/users", body)
            self._undo.append(
                (f"delete user {name}", lambda: self._call("DELETE", f"/api/v1/users/{name}"))
            )
            if spec.disabled:
                self._call("PATCH", f"/api/v1/users/{name}", {"disabled": True})
            return
        fields = ("email", "full_name", "disabled")
        old = {k: getattr(change.before.spec, k) for k in fields}
        new = {k: getattr(change.after.spec, k) for k in fields}
        self._call("PATCH", f"/api/v1/users/{name}", new)
        self._undo.append(
            (f"restore user {name}", lambda: self._call("PATCH", f"/api/v1/users/{name}", old))
        )

    def _project(self, change: Change) -> None:
        name, path = change.key, f"/api/v1/projects/{change.key}"
        if change.action == "create":
            self._call(
                "POST", "/api/v1/projects", {"name": name, "public": change.after.spec.public}
            )
            self._undo.append((f"delete project {name}", lambda: self._call("DELETE", path)))
        elif change.action == "update":
            old = change.before.spec.public
            self._call("PATCH", path, {"public": change.after.spec.public})
            self._undo.append(
                (f"restore project {name}", lambda: self._call("PATCH", path, {"public": old}))
            )
        else:
            self._call("DELETE", path)

    def _robot(self, change: Change) -> None:
        if change.action == "create":
            self._create_robot(change.after)
        elif change.action == "update":
            self._update_robot(change)
        elif change.action == "replace":
            self._delete_robot(change.before, change.members)
            self._create_robot(change.after)
        else:
            self._delete_robot(change.before)

    @staticmethod
    def _robots_path(doc: Any) -> str:
        project = doc.metadata.project
        return f"/api/v1/projects/{project}/robots" if project else "/api/v1/robots"

    def _create_robot(self, doc: Any) -> None:
        spec = doc.canonical_spec()
        body = {
            "name": doc.metadata.name,
            "permissions": spec["permissions"],
            "expires_at": spec["expires_at"],
        }
        created = self._call("POST", self._robots_path(doc), body)
        robot_id, key = int(created["id"]), doc.key()
        self.ids["Robot", key] = robot_id
        self.secrets[key] = str(created["secret"])
        path = f"{self._robots_path(doc)}/{robot_id}"
        self._undo.append((f"delete robot {key}", lambda: self._forget_robot(key, path)))
        if doc.spec.disabled:
            self._call("PATCH", path, {"disabled": True})

    def _forget_robot(self, key: str, path: str) -> None:
        self.secrets.pop(key, None)
        self._call("DELETE", path)

    def _update_robot(self, change: Change) -> None:
        path = f"{self._robots_path(change.after)}/{self.ids['Robot', change.key]}"
        new, old = change.after.canonical_spec(), change.before.canonical_spec()
        self._call("PATCH", path, {"disabled": new["disabled"], "expires_at": new["expires_at"]})
        restore = {"disabled": old["disabled"], "expires_at": old["expires_at"]}
        self._undo.append(
            (f"restore robot {change.key}", lambda: self._call("PATCH", path, restore))
        )

    def _delete_robot(self, doc: Any, members: tuple[Any, ...] = ()) -> None:
        self._call("DELETE", f"{self._robots_path(doc)}/{self.ids['Robot', doc.key()]}")
        self._undo.append((f"recreate robot {doc.key()}", lambda: self._recreate(doc, members)))

    def _recreate(self, doc: Any, members: tuple[Any, ...]) -> None:
        """Create ``doc`` again (with a new secret) and give it back its memberships."""
        spec = doc.canonical_spec()
        body = {
            "name": doc.metadata.name,
            "permissions": spec["permissions"],
            "expires_at": spec["expires_at"],
        }
        self._call("POST", self._robots_path(doc), body)
        for member in members:
            kind, name = member.metadata.identity()
            self._call(
                "POST",
                f"/api/v1/projects/{member.metadata.project}/members",
                {kind: name, "role": member.spec.role},
            )

    def _member(self, change: Change) -> None:
        doc = change.after or change.before
        base = f"/api/v1/projects/{doc.metadata.project}/members"
        kind, name = doc.metadata.identity()
        if change.action == "create":
            added = self._call("POST", base, {kind: name, "role": doc.spec.role})
            path = f"{base}/{added['id']}"
            self._undo.append((f"remove member {change.key}", lambda: self._call("DELETE", path)))
            return
        path = f"{base}/{self.ids['Member', change.key]}"
        if change.action == "update":
            old = change.before.spec.role
            self._call("PATCH", path, {"role": doc.spec.role})
            self._undo.append(
                (f"restore member {change.key}", lambda: self._call("PATCH", path, {"role": old}))
            )
        else:
            self._call("DELETE", path)
            body = {kind: name, "role": doc.spec.role}
            self._undo.append(
                (f"re-add member {change.key}", lambda: self._call("POST", base, body))
            )

    def _singleton(self, change: Change) -> None:
        path = f"/api/v1/projects/{change.key}/{_SINGLETON_PATHS[change.kind]}"
        old = change.before.spec.model_dump(mode="json")
        self._call("PUT", path, change.after.spec.model_dump(mode="json"))
        self._undo.append(
            (f"restore {change.kind} {change.key}", lambda: self._call("PUT", path, old))
        )

    _quota = _singleton
    _retentionpolicy = _singleton
    _immutabilitypolicy = _singleton
    _scanpolicy = _singleton

    def _trustedissuer(self, change: Change) -> None:
        if change.action in {"replace", "delete"}:
            self._call("DELETE", f"/api/v1/trusted-issuers/{self.ids['TrustedIssuer', change.key]}")
            before = change.before
            self._undo.append((f"re-register issuer {change.key}", lambda: self._register(before)))
        if change.action in {"create", "replace"}:
            issuer_id = self._register(change.after)
            path = f"/api/v1/trusted-issuers/{issuer_id}"
            self._undo.append((f"remove issuer {change.key}", lambda: self._call("DELETE", path)))

    def _register(self, doc: Any) -> int:
        body = {"issuer": doc.metadata.name, **doc.canonical_spec()}
        return int(self._call("POST", "/api/v1/trusted-issuers", body)["id"])
