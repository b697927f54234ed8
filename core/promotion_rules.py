"""Promotion rules: promotions that a push starts.

A rule of a source project reads "a tag matching ``tags`` pushed to a repository of this
project matching ``repositories`` by an identity matching ``pusher`` (of ``pusher_kind``)
is promoted to ``target_project`` through ``gates``". Patterns are doublestar globs
(``core.patterns``): ``repositories`` on the repository's path inside the project,
``tags`` on the tag, ``pusher`` on the identity's subject (a local or OIDC user name, a
robot's full name ``robot$<project>+<name>``, a trusted issuer's workload subject).

The target is ``<target_project>/<target_repository or the source's path>:<the tag>``.
A matching push (a tag created or moved, ``core.events``) starts one ordinary promotion
(``core.promotion``), requested by ``rule:<project>/<name>``, whose id
(:func:`rule_promotion_id`) derives from the rule, the digest and the target: the same
event delivered twice, or the same digest tagged again, starts nothing new.

Gates are those of a manual request and are decided the same way, when the promotion
runs (right after the push): a gate that is not met yet (no scan, no verified signature)
refuses the promotion with its reason unless the gates' ``wait_seconds`` has it
evaluated again until it passes or that time is over (``core.promotion``). A refusal is
final for the rule, digest and target; a later manual request (``moorage promote``) is
a promotion of its own. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from core import events
from core.access import IdentityKind
from core.errors import InvalidInputError
from core.event_batches import EventValue
from core.names import PROJECT_NAME_PATTERN, RepositoryName
from core.patterns import matches
from core.promotion import Gates, PromotionRequest, check_gates
from core.subscribers import Interest, Subscriber

#: Activity name of the promotion-rule subscriber (``core.subscribers``).
DELIVER_EVENTS_PROMOTION: Final = "deliver_events_promotion"
#: The events that fire rules: a tag reached a digest.
TRIGGER_EVENTS: Final = frozenset({events.TAG_CREATED, events.TAG_MOVED})
#: The promotion-rule subscriber of the event fan-out.
PROMOTION_SUBSCRIBER: Final = Subscriber("promotion", TRIGGER_EVENTS, DELIVER_EVENTS_PROMOTION)
#: Identity kinds a rule may name (those that push).
PUSHER_KINDS: Final = (
    IdentityKind.USER,
    IdentityKind.OIDC_USER,
    IdentityKind.ROBOT,
    IdentityKind.ISSUER,
)
#: Who a rule's promotion is requested by (``rule:<project>/<name>``).
RULE_ACTOR_PREFIX: Final = "rule:"

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
_PROJECT = re.compile(PROJECT_NAME_PATTERN)
_MAX_PATTERN = 255


@dataclass(frozen=True, slots=True)
class RuleInput:
    """A rule as a project administrator writes it."""

    name: str
    target_project: str
    tags: str = "**"
    repositories: str = "**"
    pusher: str | None = None
    pusher_kind: str | None = None
    target_repository: str | None = None
    gates: Gates = field(default_factory=Gates)
    sign: bool = False
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class PromotionRule:
    """A stored rule of the source project ``project``."""

    id: int
    project_id: int
    project: str
    name: str
    description: str
    repositories: str
    tags: str
    pusher: str | None
    pusher_kind: str | None
    target_project: str
    target_repository: str | None
    gates: Gates
    sign: bool
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def key(self) -> str:
        """``<project>/<name>#<id>``: names the rule in its promotions' ids."""
        return f"{self.project}/{self.name}#{self.id}"

    @property
    def actor(self) -> str:
        """Who the rule's promotions are requested by."""
        return f"{RULE_ACTOR_PREFIX}{self.project}/{self.name}"

    def selects(self, repository: str, tag: str, pusher: Pusher | None) -> bool:
        """Whether a push of ``repository:tag`` by ``pusher`` fires the rule."""
        project, _, inner = repository.partition("/")
        if project != self.project or not inner:
            return False
        if not (matches(self.repositories, inner) and matches(self.tags, tag)):
            return False
        if self.pusher is None and self.pusher_kind is None:
            return True
        if pusher is None:
            return False  # a rule naming a pusher never fires on an unattributed change
        if self.pusher_kind is not None and pusher.kind != self.pusher_kind:
            return False
        return self.pusher is None or matches(self.pusher, pusher.name)

    def target(self, repository: str) -> str:
        """The target repository of a push to ``repository``."""
        inner = self.target_repository or repository.partition("/")[2]
        return f"{self.target_project}/{inner}"


@dataclass(frozen=True, slots=True)
class Pusher:
    """Who made a change (from the event's ``operator`` and ``operator_kind``)."""

    name: str
    kind: str


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            "name: 1-63 lower-case letters, digits, '.', '_' and '-'", field="name"
        )
    return name


def check_rule(data: RuleInput) -> RuleInput:
    """The input as stored, or an ``InvalidInputError`` naming the field."""
    check_name(data.name)
    for value, name in ((data.repositories, "repositories"), (data.tags, "tags")):
        if not value or len(value) > _MAX_PATTERN:
            raise InvalidInputError(f"{name}: a glob of 1 to 255 characters", field=name)
    if data.pusher is not None and not 0 < len(data.pusher) <= _MAX_PATTERN:
        raise InvalidInputError("pusher: a glob of 1 to 255 characters", field="pusher")
    if data.pusher_kind is not None and data.pusher_kind not in PUSHER_KINDS:
        kinds = ", ".join(str(k) for k in PUSHER_KINDS)
        raise InvalidInputError(f"pusher_kind is one of {kinds} (or null)", field="pusher_kind")
    if not _PROJECT.fullmatch(data.target_project):
        raise InvalidInputError("target_project: not a project name", field="target_project")
    if data.target_repository is not None:
        try:
            RepositoryName.parse(f"{data.target_project}/{data.target_repository}")
        except Exception as exc:
            raise InvalidInputError(
                f"target_repository: not a repository path ({exc})", field="target_repository"
            ) from exc
    check_gates(data.gates)
    return data


def rule_promotion_id(rule_key: str, digest: str, target: str, tag: str) -> str:
    """The promotion's workflow id: one per (rule, source digest, target).

    ``rule_key`` is :attr:`PromotionRule.key` (``<project>/<name>#<id>``).
    """
    key = f"rule {rule_key}\n{digest}\n{target}:{tag}".encode()
    return "promotion-" + hashlib.sha256(key).hexdigest()[:32]


def rule_request(rule: PromotionRule, repository: str, digest: str, tag: str) -> PromotionRequest:
    """The promotion a matching push of ``repository:tag`` at ``digest`` starts."""
    target = rule.target(repository)
    return PromotionRequest(
        id=rule_promotion_id(rule.key, digest, target, tag),
        source_repository=repository,
        source_digest=digest,
        target_repository=target,
        target_tag=tag,
        gates=rule.gates,
        requested_by=rule.actor,
        sign=rule.sign,
    )


def pusher_of(data: str | None) -> Pusher | None:
    """Who made an event's change (``operator``/``operator_kind`` of its JSON data)."""
    if not data or not data.startswith("{"):
        return None
    try:
        details = json.loads(data)
    except ValueError:
        return None
    name, kind = details.get("operator"), details.get("operator_kind")
    if not isinstance(name, str) or not name:
        return None
    return Pusher(name, kind if isinstance(kind, str) else "")


@dataclass(frozen=True, slots=True)
class Fired:
    """A rule a push fired: the promotion it starts and who pushed."""

    rule: PromotionRule
    request: PromotionRequest
    pusher: Pusher | None


def fired_by(rules: Sequence[PromotionRule], batch: Iterable[EventValue]) -> list[Fired]:
    """The promotions ``batch``'s tag events start, in event order (one per id)."""
    found: dict[str, Fired] = {}
    for event in batch:
        if event.kind not in TRIGGER_EVENTS or not (event.repository and event.tag):
            continue
        if not event.digest:
            continue
        pusher = pusher_of(event.data)
        for rule in rules:
            if rule.project_id == event.project_id and rule.selects(
                event.repository, event.tag, pusher
            ):
                request = rule_request(rule, event.repository, event.digest, event.tag)
                found.setdefault(request.id, Fired(rule, request, pusher))
    return list(found.values())


class PromotionRuleStore(Protocol):
    """Where rules are kept (``storage.db.promotion_rules``)."""

    def add(self, rule: PromotionRule) -> PromotionRule | None:
        """Store a new rule; ``None`` when its project holds one of that name."""
        ...

    def get(self, rule_id: int) -> PromotionRule | None: ...

    def of_project(self, project_id: int) -> list[PromotionRule]:
        """The project's rules, by id."""
        ...

    def enabled_of(self, project_ids: list[int]) -> list[PromotionRule]:
        """The enabled rules of these projects, by id."""
        ...

    def save(self, rule: PromotionRule) -> bool:
        """Replace a stored rule; ``False`` when gone or its new name is taken."""
        ...

    def delete(self, rule_id: int) -> bool: ...


def promotion_interest(enabled_of: Callable[[list[int]], Sequence[PromotionRule]]) -> Interest:
    """The promotion subscriber's interest: events of projects with an enabled rule.

    ``enabled_of`` (the store's) is asked once a call, for every project of the events.
    """

    def wanted(pending: Sequence[EventValue]) -> Collection[int]:
        projects = sorted({e.project_id for e in pending if e.project_id is not None})
        if not projects:
            return []
        ruled = {rule.project_id for rule in enabled_of(projects)}
        return [e.event_id for e in pending if e.project_id in ruled]

    return wanted
