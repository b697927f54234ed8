"""Retention by pull time and the rule deciding which pulls are written (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.clock import SystemClock
from core.policies import ImmutabilityPolicy
from core.pulls import PullRecorder, WriteContentionError, pull_is_due
from core.retention import Artifact, RetentionPolicy, evaluate

NOW = datetime(2026, 1, 10, tzinfo=UTC)


def _artifact(
    digest: str, pushed_days_ago: int, pulled_days_ago: int | None, *tags: str
) -> Artifact:
    pulled = None if pulled_days_ago is None else NOW - timedelta(days=pulled_days_ago)
    return Artifact(
        "p/app", digest, tags or (digest,), NOW - timedelta(days=pushed_days_ago), False, pulled
    )


def _decide(
    rules: list[dict[str, object]], artifacts: list[Artifact]
) -> dict[str, tuple[bool, str]]:
    policy = RetentionPolicy.model_validate({"rules": rules})
    decisions = evaluate(policy, ImmutabilityPolicy(), artifacts, NOW)
    return {d.artifact.digest: (d.retain, d.reason) for d in decisions}


def test_latest_pulled_keeps_the_most_recently_pulled() -> None:
    artifacts = [
        _artifact("old-push-fresh-pull", 30, 1),
        _artifact("new-push-old-pull", 2, 20),
        _artifact("never-pulled-recent-push", 3, None),
        _artifact("never-pulled-old-push", 40, None),
    ]
    decided = _decide([{"template": "latestPulledN", "n": 2}], artifacts)
    kept = "retained by rule 1 (latestPulledN n=2)"
    assert decided == {
        "old-push-fresh-pull": (True, kept),
        "never-pulled-recent-push": (True, kept),
        "new-push-old-pull": (False, "no rule retains it"),
        "never-pulled-old-push": (False, "no rule retains it"),
    }


def test_latest_pulled_differs_from_latest_pushed() -> None:
    artifacts = [_artifact("a", 1, 10), _artifact("b", 5, 2)]
    by_pull = _decide([{"template": "latestPulledN", "n": 1}], artifacts)
    by_push = _decide([{"template": "latestPushedK", "n": 1}], artifacts)
    assert [d for d, (keep, _) in by_pull.items() if keep] == ["b"]
    assert [d for d, (keep, _) in by_push.items() if keep] == ["a"]


def test_days_since_last_pull_counts_never_pulled_at_push_time() -> None:
    artifacts = [
        _artifact("pulled-recently", 90, 3),
        _artifact("pulled-long-ago", 5, 30),
        _artifact("never-pulled-fresh", 2, None),
        _artifact("never-pulled-stale", 60, None),
    ]
    decided = _decide([{"template": "nDaysSinceLastPull", "n": 7}], artifacts)
    kept = "retained by rule 1 (nDaysSinceLastPull n=7)"
    assert decided == {
        "pulled-recently": (True, kept),
        "pulled-long-ago": (False, "no rule retains it"),
        "never-pulled-fresh": (True, kept),
        "never-pulled-stale": (False, "no rule retains it"),
    }


def test_pull_rules_respect_selectors_and_or_with_other_rules() -> None:
    artifacts = [
        _artifact("release", 50, 40, "v1"),
        _artifact("dev", 50, 1, "dev-1"),
        _artifact("kept", 50, 50, "keep"),
    ]
    rules: list[dict[str, object]] = [
        {"template": "nDaysSinceLastPull", "n": 7, "tag": {"pattern": "v*"}},
        {"template": "latestPulledN", "n": 1, "tag": {"pattern": "dev-*"}},
        {"template": "always", "tag": {"pattern": "keep"}},
    ]
    decided = _decide(rules, artifacts)
    assert decided == {
        "release": (False, "no rule retains it"),
        "dev": (True, "retained by rule 2 (latestPulledN n=1)"),
        "kept": (True, "retained by rule 3 (always)"),
    }


def test_unknown_template_is_refused() -> None:
    with pytest.raises(ValueError, match="template"):
        RetentionPolicy.model_validate({"rules": [{"template": "latestPulledK", "n": 1}]})


def test_pull_is_due_only_past_the_granularity() -> None:
    minute = timedelta(seconds=60)
    assert pull_is_due(None, NOW, minute)
    assert not pull_is_due(NOW - timedelta(seconds=59), NOW, minute)
    assert pull_is_due(NOW - minute, NOW, minute)
    assert pull_is_due(NOW, NOW, timedelta(0))


class _Store:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[tuple[int, datetime, datetime]] = []
        self.fail = fail

    def record_pull(self, manifest_id: int, now: datetime, stale_before: datetime) -> bool:
        self.calls.append((manifest_id, now, stale_before))
        if self.fail is not None:
            raise self.fail
        return True


def test_recorder_skips_fresh_pulls_and_claims_stale_ones_once() -> None:
    store = _Store()
    recorder = PullRecorder(store, 60, SystemClock())
    assert recorder.deferred(1, datetime.now(UTC)) is None
    first = recorder.deferred(2, None)
    assert first is not None
    assert recorder.deferred(2, None) is None  # claimed by the first pull
    first()
    ((manifest_id, now, stale_before),) = store.calls
    assert manifest_id == 2
    assert now - stale_before == timedelta(seconds=60)


@pytest.mark.parametrize("failure", [WriteContentionError("busy"), RuntimeError("boom")])
def test_failed_writes_are_swallowed_and_retried_by_the_next_pull(failure: Exception) -> None:
    store = _Store(failure)
    recorder = PullRecorder(store, 60, SystemClock())
    write = recorder.deferred(3, None)
    assert write is not None
    write()  # must not raise
    assert len(store.calls) == 1
    assert recorder.deferred(3, None) is not None


def test_zero_granularity_writes_every_pull() -> None:
    store = _Store()
    recorder = PullRecorder(store, 0, SystemClock())
    for _ in range(3):
        write = recorder.deferred(4, None)
        assert write is not None
        write()
    assert len(store.calls) == 3
