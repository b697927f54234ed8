"""Administration as code: the plan from a file's documents and the registry's state.

``make_plan`` is pure: it compares the desired documents with the live ones (read from
the registry as documents of the same kinds) by natural key and answers the changes, in
the order they must be made: creations and updates by kind (users, projects, robots,
members, policies, issuers), then deletions in the reverse order. It refuses, before
anything is changed, every problem it can see: a duplicate key, a reference to a project,
robot, registry endpoint, P2P instance, scanner or promotion target that neither the file
nor the registry holds (or that ``--prune`` would delete), a user to create without a
password, two default scanners.

Prune semantics: without ``prune`` nothing absent from the file is touched. With it the
file is the whole truth for what it can name: projects, system robots, system webhooks,
registry endpoints, P2P instances, scanners and trusted issuers it does not name are
deleted; inside the projects it names, robots, members, webhooks, preheat policies,
promotion rules and trust policies it does not name are deleted and quota, retention,
immutability, scan, allowlist, proxy and project scanner documents it leaves out are reset
to their defaults (unlimited, no rules, scan on push without a gate, no entries, no proxy,
the default scanner); a system allowlist it leaves out is emptied. Users are never pruned.
Resets run with the creations and updates, so a binding (or a project's scanner) is reset
before the endpoint (or scanner) it names is deleted; policies are deleted before the
instances and endpoints they name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from core.ascode_base import InProject
from core.ascode_models import (
    KINDS,
    PROJECT_SINGLETONS,
    ImmutabilityDoc,
    MemberDoc,
    QuotaDoc,
    RetentionDoc,
    UserDoc,
)
from core.ascode_outbound import STORED, EndpointDoc, ProxyDoc, WebhookDoc
from core.ascode_preheat import P2PInstanceDoc, PreheatPolicyDoc
from core.ascode_promotion import PromotionRuleDoc
from core.ascode_replication import ReplicationPolicyDoc
from core.ascode_scanners import ProjectScannerDoc, ScannerDoc, scanner_problems
from core.ascode_security import security_default

SHOWN_MAX = 120
Action = Literal["create", "update", "replace", "delete"]


@dataclass(frozen=True, slots=True)
class Located:
    """A document and where it was read (``file.yaml: document 3 (line 12)``)."""

    where: str
    doc: Any


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    kind: str
    key: str
    before: Any = None
    after: Any = None
    fields: tuple[tuple[str, Any, Any], ...] = ()
    #: For a robot replaced: its memberships before (an undo restores them).
    members: tuple[Any, ...] = ()
    #: Where the document asking for the change was read (empty for a deletion).
    where: str = ""

    def describe(self) -> str:
        """One line for humans: ``~ Project team: public false -> true``."""
        sign = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}[self.action]
        text = f"{sign} {self.kind} {self.key}"
        if self.fields:
            shown = "; ".join(
                f"{name}: {_short(old)} -> {_short(new)}" for name, old, new in self.fields
            )
            text += f": {shown}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "key": self.key,
            "fields": {name: {"before": old, "after": new} for name, old, new in self.fields},
        }


@dataclass
class PlanError(Exception):
    """Problems found before anything was changed, each naming where."""

    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.problems)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 3] + "..."


def default_singleton(kind: str, project: str) -> Any:
    """The state without a document of ``kind`` (no quota, no rules, an empty allowlist).

    ``project`` is the document's key (``core.ascode_security.SYSTEM`` for the system
    allowlist).
    """
    if kind in {"ScanPolicy", "CveAllowlist"}:
        return security_default(kind, project)
    meta = InProject(project=project)
    version = {"apiVersion": "moorage.io/v1"}
    if kind == "Quota":
        return QuotaDoc.model_validate({**version, "kind": kind, "metadata": meta})
    if kind == "RetentionPolicy":
        return RetentionDoc.model_validate({**version, "kind": kind, "metadata": meta})
    if kind == "ProxyBinding":
        return ProxyDoc.model_validate({**version, "kind": kind, "metadata": meta})
    if kind == "ProjectScanner":
        return ProjectScannerDoc.model_validate({**version, "kind": kind, "metadata": meta})
    return ImmutabilityDoc.model_validate({**version, "kind": kind, "metadata": meta})


def index(docs: Iterable[Any]) -> dict[tuple[str, str], Any]:
    return {(doc.kind, doc.key()): doc for doc in docs}


def check(desired: Sequence[Located], live: dict[tuple[str, str], Any], prune: bool) -> None:
    """Raise ``PlanError`` with every problem of the desired documents."""
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for item in desired:
        key = (item.doc.kind, item.doc.key())
        if key in seen:
            problems.append(f"{item.where}: duplicate {key[0]} {key[1]!r} (first in {seen[key]})")
        else:
            seen[key] = item.where
    for item in desired:
        problems.extend(_reference_problems(item, seen, live, prune))
    defaults = [
        item.where
        for item in desired
        if isinstance(item.doc, P2PInstanceDoc) and item.doc.spec.default
    ]
    if len(defaults) > 1:
        problems.append(
            f"{defaults[1]}: spec.default: only one P2P instance can be the default "
            f"(also in {defaults[0]})"
        )
    problems.extend(scanner_problems([(item.where, item.doc) for item in desired]))
    if problems:
        raise PlanError(problems)


def _reference_problems(
    item: Located, seen: dict[tuple[str, str], str], live: dict[tuple[str, str], Any], prune: bool
) -> list[str]:
    doc, problems = item.doc, []

    def known(kind: str, key: str) -> bool:
        return (kind, key) in seen or (not prune and (kind, key) in live)

    project = doc.project_ref()
    if project is not None and not known("Project", project):
        why = "with --prune it must be named in the file" if ("Project", project) in live else ""
        problems.append(
            f"{item.where}: metadata.project: no project {project!r} in the file or the registry"
            + (f" ({why})" if why else "")
        )
    if isinstance(doc, MemberDoc) and doc.metadata.robot is not None:
        robot = doc.metadata.robot
        if not known("Robot", robot):
            problems.append(
                f"{item.where}: metadata.robot: no robot {robot!r} in the file or the registry"
            )
        elif robot.startswith("robot$") and "+" in robot:
            owner = robot.removeprefix("robot$").partition("+")[0]
            if owner != doc.metadata.project:
                problems.append(
                    f"{item.where}: metadata.robot: {robot!r} is a robot of project {owner!r}, "
                    f"not of {doc.metadata.project!r}"
                )
    if isinstance(doc, UserDoc) and ("User", doc.key()) not in live and doc.spec.password is None:
        problems.append(
            f"{item.where}: spec.password: required to create user {doc.key()!r} "
            "(a reference: env:NAME or file:/path)"
        )
    for kind, where, name, label in _named_references(doc):
        if not known(kind, name):
            problems.append(
                f"{item.where}: {where}: no {label} {name!r} in the file or the registry"
            )
    problems.extend(_stored_secret_problems(item, live))
    return problems


def _named_references(doc: Any) -> list[tuple[str, str, str, str]]:
    """``(kind, field, name, label)`` of each system object ``doc`` names."""
    found = []
    if isinstance(doc, ProxyDoc | ReplicationPolicyDoc) and doc.spec.endpoint is not None:
        found.append(("RegistryEndpoint", "spec.endpoint", doc.spec.endpoint, "registry endpoint"))
    if isinstance(doc, PreheatPolicyDoc):
        found.append(("P2PInstance", "spec.instance", doc.spec.instance, "P2P instance"))
    if isinstance(doc, ProjectScannerDoc) and doc.spec.scanner is not None:
        found.append(("Scanner", "spec.scanner", doc.spec.scanner, "scanner"))
    if isinstance(doc, PromotionRuleDoc):
        found.append(("Project", "spec.target_project", doc.spec.target_project, "project"))
    return found


def _stored_secret_problems(item: Located, live: dict[tuple[str, str], Any]) -> list[str]:
    """``stored`` names a secret the registry holds: refused where it holds none."""
    doc = item.doc
    if isinstance(doc, WebhookDoc):
        name, value = "auth_header", doc.spec.auth_header
    elif isinstance(doc, EndpointDoc | P2PInstanceDoc):
        name, value = "secret", doc.spec.secret
    elif isinstance(doc, ScannerDoc):
        name, value = "access_credential", doc.spec.access_credential
    else:
        return []
    current = live.get((doc.kind, doc.key()))
    if value != STORED or (current is not None and current.canonical_spec()[name] is not None):
        return []
    return [
        (
            f"{item.where}: spec.{name}: 'stored' keeps the value the registry holds, and "
            f"{doc.kind} {doc.key()!r} has none there: give a reference (env:NAME or file:/path)"
        )
    ]


def make_plan(desired: Sequence[Located], live_docs: Iterable[Any], *, prune: bool) -> list[Change]:
    """The changes that make the registry match ``desired`` (see the module docstring).

    Deleting a robot removes its memberships, so a robot that is replaced has its members
    added again: those the file names, and without ``prune`` the others it had.
    """
    live = index(live_docs)
    before_changes = dict(live)
    check(desired, live, prune)
    wanted = index(item.doc for item in desired)
    projects = {key for kind, key in wanted if kind == "Project"}
    changes: list[Change] = []
    for kind in KINDS:
        if kind == "Member":
            changes.extend(_readded_members(changes, live, wanted, prune))
        for (doc_kind, key), doc in wanted.items():
            if doc_kind != kind:
                continue
            before = live.get((kind, key))
            if before is None and kind in PROJECT_SINGLETONS:
                before = default_singleton(kind, key)
            change = _compare(kind, key, before, doc)
            project = doc.project_ref()
            if (
                change is not None
                and kind in PROJECT_SINGLETONS
                and project is not None
                and ("Project", project) not in live
            ):
                change = replace(change, action="create")  # of a project created here
            if change is not None:
                changes.append(change)
        if prune and kind in PROJECT_SINGLETONS:
            changes.extend(_resets(kind, live, wanted, projects))
    if prune:
        changes.extend(_deletions(live, wanted, projects))
    wheres = {(item.doc.kind, item.doc.key()): item.where for item in desired}
    return [
        replace(
            _with_members(change, before_changes), where=wheres.get((change.kind, change.key), "")
        )
        for change in changes
    ]


def _robot_members(robot: str, live: dict[tuple[str, str], Any]) -> list[Any]:
    return [
        doc
        for (kind, _), doc in live.items()
        if kind == "Member" and isinstance(doc, MemberDoc) and doc.metadata.robot == robot
    ]


def _readded_members(
    changes: list[Change],
    live: dict[tuple[str, str], Any],
    wanted: dict[tuple[str, str], Any],
    prune: bool,
) -> list[Change]:
    """Members of replaced robots, which go with the robot.

    They leave ``live`` (so the file's members of such a robot are created again), and
    those the file does not name but keeps (no ``prune``) are created again as they were.
    """
    added = []
    for change in changes:
        if change.kind != "Robot" or change.action != "replace":
            continue
        for member in _robot_members(change.key, live):
            del live["Member", member.key()]
            if ("Member", member.key()) not in wanted and not prune:
                added.append(Change("create", "Member", member.key(), None, member))
    return added


def _with_members(change: Change, live: dict[tuple[str, str], Any]) -> Change:
    """A robot's replacement carries the memberships an undo must restore.

    (A pruned robot's members are deleted by changes of their own, undone after it.)
    """
    if change.kind != "Robot" or change.action != "replace":
        return change
    return replace(change, members=tuple(_robot_members(change.key, live)))


def _compare(kind: str, key: str, before: Any, after: Any) -> Change | None:
    if before is None:
        return Change("create", kind, key, None, after)
    old, new = before.canonical_spec(), after.canonical_spec()
    fields = tuple(
        (name, old.get(name), new.get(name)) for name in new if old.get(name) != new.get(name)
    )
    if not fields:
        return None
    action: Action = "replace" if _replaced(kind, fields) else "update"
    return Change(action, kind, key, before, after, fields)


def _replaced(kind: str, fields: tuple[tuple[str, Any, Any], ...]) -> bool:
    """Whether the API cannot make these changes in place (the object is recreated)."""
    if kind == "TrustedIssuer":
        return True  # issuers are registered and removed, never edited
    if kind == "Robot":
        # NOTE: a robot's permissions are fixed at creation, and PATCH cannot clear an expiry.
        return any(
            name == "permissions" or (name == "expires_at" and new is None)
            for name, _, new in fields
        )
    return False


def _resets(
    kind: str,
    live: dict[tuple[str, str], Any],
    wanted: dict[tuple[str, str], Any],
    projects: set[str],
) -> list[Change]:
    """Singletons the file leaves out reset: of the projects it names, and system-wide ones."""
    changes = []
    for (doc_kind, key), doc in live.items():
        project = doc.project_ref()
        if doc_kind != kind or (kind, key) in wanted or project not in projects | {None}:
            continue
        change = _compare(kind, key, doc, default_singleton(kind, key))
        if change is not None:
            changes.append(change)
    return changes


def _deletions(
    live: dict[tuple[str, str], Any], wanted: dict[tuple[str, str], Any], projects: set[str]
) -> list[Change]:
    changes = []
    for kind in reversed(KINDS):
        if kind == "User" or kind in PROJECT_SINGLETONS:
            continue
        for (doc_kind, key), doc in live.items():
            if doc_kind != kind or (kind, key) in wanted:
                continue
            project = doc.project_ref()
            if project is not None and project not in projects:
                continue  # deleted with its project
            changes.append(Change("delete", kind, key, doc, None))
    return changes
