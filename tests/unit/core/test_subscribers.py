"""The subscriber registry's contract and the names batches get."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import events
from core.event_batches import EventValue, batch_execution_id, batch_search, batch_workflow_id
from core.subscribers import LOG, Subscriber, Subscribers, builtin_subscribers


def _event(n: int, kind: str, repository: str | None, digest: str | None = None) -> EventValue:
    return EventValue(n, kind, 1, repository, digest, None, None, "2026-12-03T04:00:00+00:00")


def test_a_registry_finds_the_subscribers_of_a_kind_in_registration_order() -> None:
    scan = Subscriber("scan", frozenset({events.MANIFEST_PUSHED}), "scan_batch")
    registry = Subscribers([LOG, scan])
    assert registry.wanting(events.MANIFEST_PUSHED) == [LOG, scan]
    assert registry.wanting(events.TAG_DELETED) == [LOG]
    assert registry.wanting(events.GC_REQUESTED) == []
    assert registry.get("scan") is scan
    assert registry.get("webhook") is None
    assert list(builtin_subscribers()) == [LOG]


@pytest.mark.parametrize(
    ("kind", "wanted", "activity"),
    [("Web Hook", {"x"}, "a"), ("a-b", {"x"}, "a"), ("hook", set(), "a"), ("hook", {"x"}, "")],
)
def test_a_subscriber_needs_a_short_kind_some_events_and_an_activity(
    kind: str, wanted: set[str], activity: str
) -> None:
    with pytest.raises(ValueError, match="subscriber"):
        Subscriber(kind, frozenset(wanted), activity)


def test_a_kind_is_registered_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        Subscribers([LOG, Subscriber("log", frozenset({"x"}), "other")])


def test_a_batch_id_names_subscriber_kind_subject_and_event_range() -> None:
    formed = datetime(2026, 12, 3, 4, 5, 6, 789, tzinfo=UTC)
    one = [
        _event(7, events.MANIFEST_PUSHED, "acme/app"),
        _event(9, events.MANIFEST_PUSHED, "acme/app"),
    ]
    assert (
        batch_workflow_id("webhook", one, formed)
        == "events-webhook-manifest.pushed-acme/app-7-9-20261203T040506000789Z"
    )
    mixed = [_event(7, events.MANIFEST_PUSHED, "acme/app"), _event(8, events.TAG_CREATED, "b/c")]
    assert batch_workflow_id("log", mixed, formed).startswith("events-log-2-repositories-7-8-")
    registry = [_event(3, events.QUOTA_WARNING, None)]
    assert batch_workflow_id("log", registry, formed).startswith(
        "events-log-quota.warning-registry-3-3-"
    )


def test_an_execution_of_a_batch_is_named_apart_from_another_databases_same_ids() -> None:
    """Two databases on one Temporal namespace: same policy and batch ids, other runs."""
    one = [_event(7, events.MANIFEST_PUSHED, "acme/app")]
    here = batch_workflow_id("preheat", one, datetime(2026, 12, 3, 4, 5, 6, tzinfo=UTC))
    there = batch_workflow_id("preheat", one, datetime(2026, 12, 3, 4, 5, 7, tzinfo=UTC))
    ours = batch_execution_id("preheat", 2, 3, here)
    assert ours == batch_execution_id("preheat", 2, 3, here)  # every attempt: one execution
    assert ours != batch_execution_id("preheat", 2, 3, there)
    assert ours.startswith("preheat-2-batch-3-")
    # the execution tables hold ids of at most 64 characters; ids are 32-bit integers
    assert len(batch_execution_id("replication", 2**31 - 1, 2**31 - 1, here)) <= 64


def test_search_attributes_need_one_repository_and_the_digest_one_digest() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    same = [
        _event(1, events.MANIFEST_PUSHED, "acme/app", a),
        _event(2, events.TAG_CREATED, "acme/app", a),
    ]
    assert batch_search(same) == ("acme", "acme/app", a)
    two = [
        _event(1, events.MANIFEST_PUSHED, "acme/app", a),
        _event(2, events.MANIFEST_PUSHED, "acme/app", b),
    ]
    assert batch_search(two) == ("acme", "acme/app", None)
    mixed = [
        _event(1, events.MANIFEST_PUSHED, "acme/app", a),
        _event(2, events.MANIFEST_PUSHED, "x/y", a),
    ]
    assert batch_search(mixed) == (None, None, None)
    assert batch_search([_event(1, events.QUOTA_WARNING, None)]) == (None, None, None)
