"""Each feature's interest: which pending events its subscriber is given.

A subscriber is spared only the events its feature could not act on, given what is
configured when they are dispatched; every lookup is made once per project (or once a
call), never per event.
"""

from __future__ import annotations

from dataclasses import replace

from core import events
from core.event_batches import EventValue
from core.preheat import TriggerKind as PreheatTrigger
from core.preheat import preheat_interest
from core.promotion_rules import PromotionRule, promotion_interest
from core.replication import Direction, TriggerKind, replication_interest
from core.scan_jobs import scan_interest
from core.scan_records import ScanPolicy
from core.subscribers import all_or_nothing, project_interest
from core.webhook_events import OUTBOX_TYPES, webhook_interest
from tests.unit.core.replication_fixtures import replication_policy
from tests.unit.core.test_preheat_rules import _policy as preheat_policy
from tests.unit.core.test_promotion_rule_matching import RULE


def _event(n: int, kind: str, project: int | None, repository: str | None = "p/r") -> EventValue:
    return EventValue(n, kind, project, repository, None, None, None, "2026-12-05T22:00:00+00:00")


def test_a_project_interest_asks_once_per_project_and_leaves_out_events_without_one() -> None:
    asked: list[int] = []

    def wants(project: int) -> bool:
        asked.append(project)
        return project == 1

    pending = [
        _event(1, events.MANIFEST_PUSHED, 1),
        _event(2, events.MANIFEST_PUSHED, 2),
        _event(3, events.TAG_CREATED, 1),
        _event(4, events.GC_FINISHED, None, None),
    ]
    assert list(project_interest(wants)(pending)) == [1, 3]
    assert asked == [1, 2]


def test_all_or_nothing_asks_once_and_not_at_all_for_no_events() -> None:
    asked: list[bool] = []

    def configured() -> bool:
        asked.append(True)
        return True

    interest = all_or_nothing(configured)
    assert list(interest([])) == []
    assert asked == []
    assert list(interest([_event(5, events.TAG_CREATED, 1), _event(6, events.TAG_DELETED, 2)])) == [
        5,
        6,
    ]
    assert asked == [True]
    assert list(all_or_nothing(lambda: False)([_event(7, events.TAG_CREATED, 1)])) == []


def test_webhooks_want_what_an_enabled_policy_subscribes_to_and_every_wake() -> None:
    asked: list[tuple[int | None, str]] = []

    def subscribed(project: int | None, event_type: str) -> list[object]:
        asked.append((project, event_type))
        return ["a policy"] if project == 1 or project is None else []

    pending = [
        _event(1, events.MANIFEST_PUSHED, 1),
        _event(2, events.MANIFEST_PUSHED, 2),
        _event(3, events.MANIFEST_PUSHED, 1),
        _event(4, events.GC_FINISHED, 3, None),  # a system event: system-wide policies
        _event(5, events.WEBHOOK_WAKE, None, None),
    ]
    assert list(webhook_interest(subscribed)(pending)) == [1, 3, 4, 5]
    pushed, gc = str(OUTBOX_TYPES[events.MANIFEST_PUSHED]), str(OUTBOX_TYPES[events.GC_FINISHED])
    assert asked == [(1, pushed), (2, pushed), (None, gc)]  # once per project and type

    def nobody(project: int | None, event_type: str) -> list[object]:
        return []

    assert list(webhook_interest(nobody)(pending)) == [5]  # a redelivery's wake goes through


def test_replication_wants_every_event_while_a_policy_pushes_on_events() -> None:
    firing = replication_policy(trigger=TriggerKind.EVENT, direction=Direction.PUSH)
    pending = [_event(1, events.MANIFEST_PUSHED, 1), _event(2, events.TAG_DELETED, 2)]
    assert firing.fires_on_events
    assert list(replication_interest(lambda: [firing])(pending)) == [1, 2]
    others = [
        replace(firing, enabled=False),
        replace(firing, trigger=TriggerKind.MANUAL),
        replace(firing, direction=Direction.PULL),
    ]
    assert not any(policy.fires_on_events for policy in others)
    assert list(replication_interest(lambda: others)(pending)) == []


def test_promotion_wants_the_events_of_projects_with_an_enabled_rule_asked_once() -> None:
    asked: list[list[int]] = []

    def enabled_of(projects: list[int]) -> list[PromotionRule]:
        asked.append(projects)
        return [RULE] if 1 in projects else []

    pending = [
        _event(1, events.TAG_CREATED, 2),
        _event(2, events.TAG_CREATED, 1),
        _event(3, events.TAG_MOVED, None),
    ]
    assert list(promotion_interest(enabled_of)(pending)) == [2]  # RULE is project 1's
    assert asked == [[1, 2]]
    assert list(promotion_interest(enabled_of)([_event(4, events.TAG_CREATED, None)])) == []
    assert asked == [[1, 2]]  # no project: not asked


def test_scanning_wants_pushes_into_projects_that_scan_on_push() -> None:
    policies = {1: ScanPolicy(1), 2: ScanPolicy(2, scan_on_push=False)}
    pending = [_event(1, events.MANIFEST_PUSHED, 1), _event(2, events.MANIFEST_PUSHED, 2)]
    assert list(
        scan_interest(lambda project: policies.get(project, ScanPolicy(project)))(pending)
    ) == [1]


def test_preheat_wants_the_events_of_projects_with_an_enabled_event_based_policy() -> None:
    event_based = preheat_policy(trigger=PreheatTrigger.EVENT_BASED)
    by_project = {
        1: [preheat_policy(), event_based],
        2: [replace(event_based, enabled=False), preheat_policy()],
    }
    pending = [_event(1, events.TAG_CREATED, 1), _event(2, events.TAG_CREATED, 2)]
    interest = preheat_interest(lambda project: by_project.get(project, []))
    assert list(interest(pending)) == [1]
