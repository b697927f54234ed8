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
A rule's repository selector marks the repositories it applies to. Retention takes no
action in a repository that no enabled rule selects: every artifact there stays (with no
rule at all, nothing is deleted). Within a selected repository the rules selecting it OR
together: an artifact retained by any of them stays, and an artifact with one retained
tag stays whole. Everything else in that repository goes, except artifacts carrying an
immutable tag. Artifacts listed by an index or referring to a subject follow their parent (GC
removes them once the parent is gone) and are never deleted by retention directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.policies import ImmutabilityPolicy, Selector

MAX_RULES = 15


class RetentionRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
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

    def rules_for(self, repository_name: str) -> list[tuple[int, RetentionRule]]:
        """The enabled rules (with their index) selecting ``repository_name``.

        ``repository_name`` is ``<project>/<path>``; repository selectors see the path.
        """
        path = repository_name.partition("/")[2]
        return [
            (index, rule)
            for index, rule in enumerate(self.rules)
            if not rule.disabled and rule.repository.selects(path)
        ]

    def selects(self, repository_name: str) -> bool:
        """Whether retention acts on ``repository_name`` at all."""
        return bool(self.rules_for(repository_name))


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


#: The reason given for every artifact of a repository no rule selects.
NOT_SELECTED = "no rule selects its repository"


def _selected(rule: RetentionRule, artifact: Artifact) -> bool:
    """Whether ``rule`` selects ``artifact`` by its tags (its repository is selected)."""
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
    """Decide every artifact, with the rule or reason for each.

    Rules apply per repository: an artifact is ranked only against the artifacts of its
    own repository, and only by the rules selecting that repository. Artifacts of a
    repository no enabled rule selects are all retained (``NOT_SELECTED``). The dry run
    and the real run both decide with this function, so a dry run lists exactly what a
    real run on the same rows deletes.
    """
    by_repository: dict[str, list[Artifact]] = {}
    for artifact in artifacts:
        by_repository.setdefault(artifact.repository, []).append(artifact)
    keepers: dict[tuple[str, str], str] = {}
    for repository, members in by_repository.items():
        candidates = [a for a in members if not a.dependent]
        for index, rule in policy.rules_for(repository):
            for digest in _retained_by(rule, candidates, now):
                keepers.setdefault((repository, digest), rule.describe(index))
    return [
        _decide(artifact, policy.selects(artifact.repository), keepers, immutability)
        for artifact in artifacts
    ]


def _decide(
    artifact: Artifact,
    selected: bool,
    keepers: dict[tuple[str, str], str],
    immutability: ImmutabilityPolicy,
) -> Decision:
    if not selected:
        return Decision(artifact, True, NOT_SELECTED)
    if artifact.dependent:
        return Decision(artifact, True, "follows its index or subject")
    keeper = keepers.get((artifact.repository, artifact.digest))
    if keeper is not None:
        return Decision(artifact, True, f"retained by {keeper}")
    for tag in artifact.tags:
        index = immutability.rule_for(artifact.repository, tag)
        if index is not None:
            return Decision(
                artifact, True, f"immutable tag {tag!r} (immutability rule {index + 1})"
            )
    return Decision(artifact, False, "no rule retains it")
