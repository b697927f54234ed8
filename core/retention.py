"""Tag retention rules (Harbor's model) and their pure evaluation.

A rule selects repositories (path inside the project) and tags with doublestar
selectors and retains, among the artifacts it selects, the ``n`` most recently pushed
(``latestPushedK``), the ``n`` most recently pulled (``latestPulledN``), those pushed
within ``n`` days (``nDaysSinceLastPush``), those pulled within ``n`` days
(``nDaysSinceLastPull``) or all (``always``). Untagged artifacts are selected only by
rules with ``untagged`` set.

Pull times: an artifact never pulled (or not pulled since pull times are recorded)
counts as pulled when it was pushed, so a fresh push is not the first to go under a
pull rule. Harbor instead sorts never-pulled artifacts last; here they rank by their
push time among the pulled ones. Recorded pull times are coarse: a pull is written at
most once per ``control.pull_time_granularity_seconds``.
Rules OR together: an artifact retained by any rule stays, and an artifact with one
retained tag stays whole. Everything else goes, except artifacts carrying an immutable
tag. Artifacts listed by an index or referring to a subject follow their parent (GC
removes them once the parent is gone) and are never deleted by retention directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from core.policies import ImmutabilityPolicy, Selector

MAX_RULES = 15


class RetentionRule(BaseModel):
    template: Literal[
        "latestPushedK", "latestPulledN", "nDaysSinceLastPush", "nDaysSinceLastPull", "always"
    ]
    n: int = Field(default=0, ge=0, lt=32767)
    repository: Selector = Selector(pattern="**")
    tag: Selector = Selector(pattern="**")
    untagged: bool = False
    disabled: bool = False

    def describe(self, index: int) -> str:
        shown = "" if self.template == "always" else f" n={self.n}"
        return f"rule {index + 1} ({self.template}{shown})"


class RetentionPolicy(BaseModel):
    rules: list[RetentionRule] = Field(default_factory=list, max_length=MAX_RULES)

    @classmethod
    def load(cls, body: str | None) -> RetentionPolicy:
        return cls.model_validate(json.loads(body)) if body else cls()


@dataclass(frozen=True, slots=True)
class Artifact:
    """A manifest of one repository as retention sees it."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime
    #: Listed by an index or refers to a subject: it follows its parent.
    dependent: bool = False
    #: Last pull of the manifest (``None``: never pulled).
    pulled_at: datetime | None = None

    @property
    def last_pulled(self) -> datetime:
        """The pull time rules compare: the push time when never pulled."""
        return self.pushed_at if self.pulled_at is None else self.pulled_at


@dataclass(frozen=True, slots=True)
class Decision:
    artifact: Artifact
    retain: bool
    reason: str


def _selected(rule: RetentionRule, artifact: Artifact) -> bool:
    if not rule.repository.selects(artifact.repository.partition("/")[2]):
        return False
    if not artifact.tags:
        return rule.untagged
    return any(rule.tag.selects(tag) for tag in artifact.tags)


def _retained_by(rule: RetentionRule, artifacts: list[Artifact], now: datetime) -> set[str]:
    selected = [a for a in artifacts if _selected(rule, a)]
    cutoff = now - timedelta(days=rule.n)
    if rule.template == "always":
        return {a.digest for a in selected}
    if rule.template == "nDaysSinceLastPush":
        return {a.digest for a in selected if a.pushed_at >= cutoff}
    if rule.template == "nDaysSinceLastPull":
        return {a.digest for a in selected if a.last_pulled >= cutoff}
    if rule.template == "latestPulledN":
        ranked = sorted(
            selected, key=lambda a: (a.last_pulled, a.pushed_at, a.digest), reverse=True
        )
    else:
        ranked = sorted(selected, key=lambda a: (a.pushed_at, a.digest), reverse=True)
    return {a.digest for a in ranked[: rule.n]}


def evaluate(
    policy: RetentionPolicy,
    immutability: ImmutabilityPolicy,
    artifacts: list[Artifact],
    now: datetime,
) -> list[Decision]:
    """Decide every artifact of one repository, with the rule or reason for each."""
    keepers: dict[str, str] = {}
    candidates = [a for a in artifacts if not a.dependent]
    for index, rule in enumerate(policy.rules):
        if rule.disabled:
            continue
        for digest in _retained_by(rule, candidates, now):
            keepers.setdefault(digest, rule.describe(index))
    return [_decide(artifact, keepers, immutability) for artifact in artifacts]


def _decide(
    artifact: Artifact, keepers: dict[str, str], immutability: ImmutabilityPolicy
) -> Decision:
    if artifact.dependent:
        return Decision(artifact, True, "follows its index or subject")
    if artifact.digest in keepers:
        return Decision(artifact, True, f"retained by {keepers[artifact.digest]}")
    for tag in artifact.tags:
        index = immutability.rule_for(artifact.repository, tag)
        if index is not None:
            return Decision(
                artifact, True, f"immutable tag {tag!r} (immutability rule {index + 1})"
            )
    return Decision(artifact, False, "no rule retains it")
