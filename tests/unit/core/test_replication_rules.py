"""Replication rules: name mapping, filters and the tasks events give."""

from __future__ import annotations

from dataclasses import dataclass

from core import events
from core.replication import (
    TaskOperation,
    event_tasks,
    map_name,
)
from tests.unit.core.replication_fixtures import replication_policy

_policy = replication_policy


@dataclass(frozen=True)
class Event:
    kind: str
    repository: str | None
    tag: str | None
    digest: str | None


def test_map_name_flattens_and_prefixes() -> None:
    assert map_name("a/b/c", 0, "") == "a/b/c"
    assert map_name("a/b/c", 1, "") == "b/c"
    assert map_name("a/b/c", 2, "mirror") == "mirror/c"
    assert map_name("a/b/c", 9, "x/y") == "x/y/c"  # the last component is kept


def test_filters_select_repositories_and_tags() -> None:
    policy = _policy(repositories="team/**", tags="v*")
    assert policy.selects("team/app", "v1")
    assert policy.selects("team/a/b", None)
    assert not policy.selects("other/app", "v1")
    assert not policy.selects("team/app", "latest")


def test_events_become_tasks_once_and_deletions_only_when_replicated() -> None:
    batch = [
        Event(events.MANIFEST_PUSHED, "team/app", "v1", "sha256:a"),
        Event(events.MANIFEST_PUSHED, "team/app", None, "sha256:child"),
        Event(events.TAG_CREATED, "team/app", "v1", "sha256:a"),
        Event(events.MANIFEST_PUSHED, "other/app", "v1", "sha256:b"),
        Event(events.TAG_DELETED, "team/app", "v0", "sha256:c"),
    ]
    plain = event_tasks(_policy(repositories="team/**", prefix="m"), batch)
    assert [(t.operation, t.destination, t.reference) for t in plain] == [
        (TaskOperation.COPY, "m/team/app", "v1")
    ]
    deleting = event_tasks(_policy(repositories="team/**", deletions=True), batch)
    assert [(t.operation, t.reference) for t in deleting] == [
        (TaskOperation.COPY, "v1"),
        (TaskOperation.DELETE, "v0"),
    ]
