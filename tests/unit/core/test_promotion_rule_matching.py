"""Promotion rules: which push fires which rule, and the promotion it starts (no I/O)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core import events
from core.errors import InvalidInputError
from core.event_batches import EventValue
from core.promotion import Gates
from core.promotion_rules import (
    PromotionRule,
    Pusher,
    RuleInput,
    check_rule,
    fired_by,
    pusher_of,
    rule_promotion_id,
)
from core.rbac import MATRIX, Role

DIGEST = "sha256:" + "a" * 64
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CI = "robot$team+ci"
RULE = PromotionRule(
    id=7,
    project_id=1,
    project="team",
    name="to-prod",
    description="",
    repositories="apps/**",
    tags="v*",
    pusher="robot$team+*",
    pusher_kind="robot",
    target_project="prod",
    target_repository=None,
    gates=Gates(signed=True),
    sign=False,
    enabled=True,
    created_by="admin",
    created_at=NOW,
    updated_at=NOW,
)


def _event(
    tag: str = "v1",
    repository: str = "team/apps/web",
    operator: str | None = CI,
    kind: str = events.TAG_CREATED,
    event_id: int = 1,
) -> EventValue:
    data = None
    if operator is not None:
        data = json.dumps({"operator": operator, "operator_kind": "robot"})
    return EventValue(event_id, kind, 1, repository, DIGEST, tag, data, NOW.isoformat())


def test_a_matching_push_starts_one_promotion_into_the_target() -> None:
    fired = fired_by([RULE], [_event()])
    assert len(fired) == 1
    request = fired[0].request
    assert (request.source_repository, request.source_digest) == ("team/apps/web", DIGEST)
    assert (request.target_repository, request.target_tag) == ("prod/apps/web", "v1")
    assert request.gates == Gates(signed=True)
    assert request.requested_by == "rule:team/to-prod"
    assert fired[0].pusher == Pusher(CI, "robot")
    assert request.id == rule_promotion_id("team/to-prod#7", DIGEST, "prod/apps/web", "v1")


def test_a_mapped_target_repository() -> None:
    mapped = replace(RULE, target_repository="released/web")
    (fired,) = fired_by([mapped], [_event()])
    assert fired.request.target_repository == "prod/released/web"


@pytest.mark.parametrize(
    "event",
    [
        _event(tag="latest"),  # tag does not match
        _event(repository="team/other"),  # repository does not match
        _event(repository="other/apps/web"),  # another project's push
        _event(operator="alice"),  # another identity
        _event(operator=None),  # nobody known
        _event(kind=events.MANIFEST_DELETED),  # not a tag event
    ],
)
def test_other_pushes_fire_nothing(event: EventValue) -> None:
    assert fired_by([RULE], [event]) == []


def test_the_same_event_twice_is_one_promotion_and_ids_differ_by_rule_and_target() -> None:
    twice = fired_by([RULE], [_event(event_id=1), _event(event_id=2)])
    assert len(twice) == 1
    other_rule = replace(RULE, id=8, name="again")
    both = fired_by([RULE, other_rule], [_event()])
    assert len({f.request.id for f in both}) == 2
    assert rule_promotion_id("team/to-prod#7", DIGEST, "prod/apps/web", "v2") != (
        twice[0].request.id
    )


def test_a_rule_without_pusher_fires_for_anyone_and_kind_alone_filters() -> None:
    anyone = replace(RULE, pusher=None, pusher_kind=None)
    assert len(fired_by([anyone], [_event(operator=None)])) == 1
    users_only = replace(RULE, pusher=None, pusher_kind="user")
    assert fired_by([users_only], [_event()]) == []


def test_pusher_of_reads_only_json_operators() -> None:
    assert pusher_of(None) is None
    assert pusher_of("api") is None  # a deletion's plain "by"
    assert pusher_of('{"operator": ""}') is None
    assert pusher_of('{"operator": "bob"}') == Pusher("bob", "")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"tags": ""}, "tags"),
        ({"pusher_kind": "scanner"}, "pusher_kind"),
        ({"target_project": "Nope!"}, "target_project"),
        ({"target_repository": "UPPER/case"}, "target_repository"),
        ({"gates": Gates(max_severity="severe")}, "gates.max_severity"),
    ],
)
def test_bad_rules_name_the_field(change: dict[str, object], field: str) -> None:
    good = RuleInput(name="r", target_project="prod")
    assert check_rule(good) == good
    with pytest.raises(InvalidInputError) as caught:
        check_rule(replace(good, **change))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_only_project_admins_write_rules_and_rotate_keys_maintainers_read_rules() -> None:
    writers = {role for role, held in MATRIX.items() if ("promotion-rule", "create") in held}
    readers = {role for role, held in MATRIX.items() if ("promotion-rule", "list") in held}
    rotators = {role for role, held in MATRIX.items() if ("signing-key", "create") in held}
    assert writers == rotators == {Role.ADMIN}
    assert readers == {Role.ADMIN, Role.MAINTAINER}
