"""Retention acts only on the repositories its rules select (Harbor's model, pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.policies import ImmutabilityPolicy
from core.retention import NOT_SELECTED, Artifact, RetentionPolicy, evaluate

NOW = datetime(2026, 1, 10, tzinfo=UTC)


def _artifact(repository: str, digest: str, days_ago: int, *tags: str) -> Artifact:
    return Artifact(repository, digest, tags, NOW - timedelta(days=days_ago))


def _decide(rules: list[dict[str, object]], artifacts: list[Artifact]) -> dict[str, str]:
    policy = RetentionPolicy.model_validate({"rules": rules})
    return {
        d.artifact.digest: ("retain" if d.retain else "delete")
        for d in evaluate(policy, ImmutabilityPolicy(), artifacts, NOW)
    }


def test_one_rule_on_one_repository_leaves_the_others_alone() -> None:
    artifacts = [
        _artifact("p1/rtest", "r1", 1, "a"),
        _artifact("p1/rtest", "r2", 2, "b"),
        _artifact("p1/rtest", "r3", 3),
        _artifact("p1/app", "a1", 1, "v1"),
        _artifact("p1/app", "a2", 2, "v2"),
        _artifact("p1/app", "a3", 3),
    ]
    rules: list[dict[str, object]] = [
        {"template": "latestPushedK", "n": 1, "repository": {"pattern": "rtest"}}
    ]
    assert _decide(rules, artifacts) == {
        "r1": "retain",
        "r2": "delete",
        "r3": "delete",
        "a1": "retain",
        "a2": "retain",
        "a3": "retain",
    }
    policy = RetentionPolicy.model_validate({"rules": rules})
    reasons = {
        d.artifact.digest: d.reason for d in evaluate(policy, ImmutabilityPolicy(), artifacts, NOW)
    }
    assert {reasons[d] for d in ("a1", "a2", "a3")} == {NOT_SELECTED}


def test_rules_rank_within_their_own_repository() -> None:
    artifacts = [
        _artifact("p1/a", "a-new", 1, "x"),
        _artifact("p1/a", "a-old", 9, "x"),
        _artifact("p1/b", "b-new", 2, "x"),
        _artifact("p1/b", "b-old", 8, "x"),
    ]
    assert _decide([{"template": "latestPushedK", "n": 1}], artifacts) == {
        "a-new": "retain",
        "a-old": "delete",
        "b-new": "retain",
        "b-old": "delete",
    }


def test_excluding_repository_and_tag_selectors() -> None:
    artifacts = [
        _artifact("p1/app", "app-1", 1, "v1"),
        _artifact("p1/app", "app-2", 2, "v2"),
        _artifact("p1/web", "web-dev", 1, "dev-1"),
        _artifact("p1/web", "web-rel", 2, "v1"),
        _artifact("p1/web", "web-old", 3, "v0"),
    ]
    rules: list[dict[str, object]] = [
        {
            "template": "latestPushedK",
            "n": 1,
            "repository": {"pattern": "app", "decoration": "excludes"},
            "tag": {"pattern": "dev-*", "decoration": "excludes"},
        }
    ]
    assert _decide(rules, artifacts) == {
        "app-1": "retain",
        "app-2": "retain",
        "web-dev": "delete",
        "web-rel": "retain",
        "web-old": "delete",
    }


def test_two_rules_on_one_repository_or_together() -> None:
    artifacts = [
        _artifact("p1/app", "newest", 1, "v3"),
        _artifact("p1/app", "stable", 20, "stable"),
        _artifact("p1/app", "old", 10, "v2"),
        _artifact("p1/other", "other", 30, "v1"),
    ]
    rules: list[dict[str, object]] = [
        {"template": "latestPushedK", "n": 1, "repository": {"pattern": "app"}},
        {"template": "always", "repository": {"pattern": "app"}, "tag": {"pattern": "stable"}},
    ]
    assert _decide(rules, artifacts) == {
        "newest": "retain",
        "stable": "retain",
        "old": "delete",
        "other": "retain",
    }


def test_disabled_rules_select_nothing() -> None:
    artifacts = [_artifact("p1/app", "a", 1, "v1"), _artifact("p1/app", "b", 2)]
    rules: list[dict[str, object]] = [{"template": "latestPushedK", "n": 0, "disabled": True}]
    assert _decide(rules, artifacts) == {"a": "retain", "b": "retain"}
