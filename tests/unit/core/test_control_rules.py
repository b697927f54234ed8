"""Doublestar patterns, immutability rules and retention evaluation (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.control_records import Usage
from core.patterns import matches
from core.policies import ImmutabilityPolicy
from core.retention import Artifact, RetentionPolicy, evaluate
from core.services.quota import QuotaLimits, crosses

NOW = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("**", "a/b/c", True),
        ("*", "a/b", False),
        ("*", "abc", True),
        ("release/**", "release/x/y", True),
        ("release/**", "releases/x", False),
        ("v?", "v1", True),
        ("v?", "v10", False),
        ("{stable,lts}", "lts", True),
        ("{stable,lts}", "latest", False),
        ("v*.{0,1}", "v2.1", True),
        ("a.b", "axb", False),
        ("", "", True),
    ],
)
def test_doublestar(pattern: str, text: str, expected: bool) -> None:
    assert matches(pattern, text) is expected


def test_immutability_rules_or_together_and_honour_excludes() -> None:
    policy = ImmutabilityPolicy.model_validate(
        {
            "rules": [
                {"repository": {"pattern": "prod/**"}, "tag": {"pattern": "**"}},
                {"tag": {"pattern": "dev-*", "decoration": "excludes"}, "disabled": True},
                {
                    "repository": {"pattern": "test/**", "decoration": "excludes"},
                    "tag": {"pattern": "v*"},
                },
            ]
        }
    )
    assert policy.rule_for("p/prod/app", "anything") == 0
    assert policy.rule_for("p/dev/app", "dev-1") is None
    assert policy.rule_for("p/dev/app", "v1") == 2
    assert policy.rule_for("p/test/app", "v1") is None


def _artifact(digest: str, days_ago: int, *tags: str, dependent: bool = False) -> Artifact:
    return Artifact("p/app", digest, tags, NOW - timedelta(days=days_ago), dependent)


def test_retention_keeps_union_of_rules_and_explains_every_artifact() -> None:
    artifacts = [
        _artifact("d1", 1, "v1"),
        _artifact("d2", 2, "v2"),
        _artifact("d3", 30, "v3"),
        _artifact("d4", 40, "stable"),
        _artifact("d5", 3),
        _artifact("d6", 50, "old", "keep-me"),
        _artifact("d7", 90, dependent=True),
    ]
    policy = RetentionPolicy.model_validate(
        {
            "rules": [
                {"template": "latestPushedK", "n": 2, "tag": {"pattern": "v*"}},
                {"template": "always", "tag": {"pattern": "stable"}},
                {"template": "nDaysSinceLastPush", "n": 7, "untagged": True},
                {"template": "always", "tag": {"pattern": "keep-*"}},
            ]
        }
    )
    immutability = ImmutabilityPolicy.model_validate({"rules": [{"tag": {"pattern": "v3"}}]})
    decisions = {
        d.artifact.digest: (d.retain, d.reason)
        for d in evaluate(policy, immutability, artifacts, NOW)
    }
    assert decisions == {
        "d1": (True, "retained by rule 1 (latestPushedK n=2)"),
        "d2": (True, "retained by rule 1 (latestPushedK n=2)"),
        "d3": (True, "immutable tag 'v3' (immutability rule 1)"),
        "d4": (True, "retained by rule 2 (always)"),
        "d5": (True, "retained by rule 3 (nDaysSinceLastPush n=7)"),
        "d6": (True, "retained by rule 4 (always)"),
        "d7": (True, "follows its index or subject"),
    }


def test_retention_deletes_what_no_rule_keeps_and_untagged_only_when_asked() -> None:
    artifacts = [_artifact("d1", 1, "v1"), _artifact("d2", 2, "v2"), _artifact("d3", 0)]
    policy = RetentionPolicy.model_validate(
        {"rules": [{"template": "latestPushedK", "n": 1}, {"template": "always", "disabled": True}]}
    )
    decisions = {
        d.artifact.digest: d.retain for d in evaluate(policy, ImmutabilityPolicy(), artifacts, NOW)
    }
    assert decisions == {"d1": True, "d2": False, "d3": False}
    assert all(d.retain for d in evaluate(RetentionPolicy(), ImmutabilityPolicy(), artifacts, NOW))


def test_quota_warning_crossing() -> None:
    limits = QuotaLimits(bytes=100, artifacts=None)
    assert crosses(limits, Usage(80, 0), Usage(90, 1), 0.85)
    assert not crosses(limits, Usage(86, 0), Usage(90, 1), 0.85)
    assert not crosses(QuotaLimits(), Usage(0, 0), Usage(10**9, 10), 0.85)
