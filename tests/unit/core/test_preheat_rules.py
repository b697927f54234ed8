"""Preheat's rules: filters in Harbor's order, criteria a project imposes, event
candidates (push, scan completed, signature verified), policy checks, token lifetime."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from core import events
from core.errors import InvalidInputError
from core.preheat import (
    AuthMode,
    Candidate,
    Criteria,
    Policy,
    PolicyInput,
    PollShape,
    Scope,
    Task,
    TaskStatus,
    TriggerKind,
    check_policy,
    criteria_of,
    event_candidates,
    filter_candidates,
    overall_status,
    parse_auth_mode,
    token_lifetime,
)

NOW = datetime(2026, 12, 3, tzinfo=UTC)
D1, D2, D3 = (f"sha256:{n:064x}" for n in (1, 2, 3))


def _policy(**changes: object) -> Policy:
    values: dict[str, object] = {
        "id": 1,
        "project_id": 7,
        "project": "team",
        "name": "p",
        "description": "",
        "instance_id": 1,
        "repositories": "**",
        "tags": "**",
        "signed_only": False,
        "severity": None,
        "trigger": TriggerKind.MANUAL,
        "cron": None,
        "scope": Scope.SINGLE_SEED_PEER,
        "cluster_ids": (),
        "enabled": True,
        "created_by": "admin",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(changes)
    return Policy(**values)  # type: ignore[arg-type]


@dataclass
class Verdicts:
    """Signature and vulnerability verdicts that note what they were asked."""

    signed_digests: set[str] = field(default_factory=set)
    clean_digests: set[str] = field(default_factory=set)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def signed(self, repository: str, digest: str) -> bool:
        del repository
        self.asked.append(("signature", digest))
        return digest in self.signed_digests

    def passes(self, repository: str, digest: str, severity: str) -> bool:
        del repository
        self.asked.append((f"vulnerability:{severity}", digest))
        return digest in self.clean_digests


CANDIDATES = [
    Candidate("team/web/frontend", "v1", D1),
    Candidate("team/web/frontend", "dev", D2),
    Candidate("team/api", "v1", D3),
    Candidate("other/web/frontend", "v1", D1),
]


def test_repository_and_tag_globs_match_inside_the_project() -> None:
    policy = _policy(repositories="web/**", tags="v*")
    kept = filter_candidates(policy, CANDIDATES, Verdicts(), Verdicts())
    assert kept == [Candidate("team/web/frontend", "v1", D1)]


def test_brace_alternatives_and_single_star() -> None:
    policy = _policy(repositories="{api,web/*}", tags="*")
    kept = filter_candidates(policy, CANDIDATES, Verdicts(), Verdicts())
    assert [(c.repository, c.tag) for c in kept] == [
        ("team/web/frontend", "v1"),
        ("team/web/frontend", "dev"),
        ("team/api", "v1"),
    ]


def test_filters_run_in_harbor_order_and_only_on_what_is_left() -> None:
    verdicts = Verdicts(signed_digests={D1, D3}, clean_digests={D3})
    policy = _policy(tags="v1", signed_only=True, severity="high")
    kept = filter_candidates(policy, CANDIDATES, verdicts, verdicts)
    assert kept == [Candidate("team/api", "v1", D3)]
    # dev (tag filter) and the other project (repository filter) never reached the
    # signature check; the vulnerability check saw only signed images
    assert verdicts.asked == [
        ("signature", D1),
        ("vulnerability:high", D1),
        ("signature", D3),
        ("vulnerability:high", D3),
    ]


def test_unsigned_images_never_reach_the_vulnerability_check() -> None:
    verdicts = Verdicts(signed_digests=set(), clean_digests={D1, D2, D3})
    kept = filter_candidates(
        _policy(signed_only=True, severity="low"), CANDIDATES, verdicts, verdicts
    )
    assert kept == []
    assert all(kind == "signature" for kind, _ in verdicts.asked)


def test_without_signature_and_vulnerability_filters_nothing_is_asked() -> None:
    verdicts = Verdicts()
    kept = filter_candidates(_policy(), [*CANDIDATES, CANDIDATES[0]], verdicts, verdicts)
    assert len(kept) == 3  # the repeated candidate once, the other project never
    assert verdicts.asked == []


@dataclass
class Event:
    kind: str
    project_id: int | None
    repository: str | None
    tag: str | None
    digest: str | None


def test_event_candidates_are_tagged_artifacts_of_the_policy_project() -> None:
    policy = _policy(repositories="web/**", trigger=TriggerKind.EVENT_BASED)
    batch = [
        Event(events.MANIFEST_PUSHED, 7, "team/web/frontend", "v1", D1),
        Event(events.MANIFEST_PUSHED, 7, "team/web/frontend", None, D2),  # untagged
        Event(events.TAG_CREATED, 7, "team/web/frontend", "v1", D1),  # repeat
        Event(events.TAG_MOVED, 7, "team/web/frontend", "latest", D3),
        Event(events.TAG_DELETED, 7, "team/web/frontend", "old", D1),  # not a trigger
        Event(events.MANIFEST_PUSHED, 7, "team/api", "v1", D1),  # repository filter
        Event(events.MANIFEST_PUSHED, 8, "team/web/frontend", "v2", D1),  # other project id
    ]
    assert event_candidates(policy, batch) == [
        Candidate("team/web/frontend", "v1", D1),
        Candidate("team/web/frontend", "latest", D3),
    ]


def test_a_completed_scan_names_every_tag_of_its_digest() -> None:
    """Harbor's OnScanComplete: the digest is evaluated again; a failed scan is ignored."""
    policy = _policy(repositories="web/**", tags="v*", trigger=TriggerKind.EVENT_BASED)
    batch = [
        Event(events.SCAN_COMPLETED, 7, "team/web/frontend", None, D1),
        Event(events.SCAN_COMPLETED, 7, "team/web/frontend", None, D1),  # repeat
        Event(events.SCAN_FAILED, 7, "team/web/frontend", None, D2),  # no action
        Event(events.SCAN_COMPLETED, 7, "team/api", None, D3),  # repository filter
        Event(events.SCAN_COMPLETED, 8, "team/web/frontend", None, D3),  # other project id
    ]
    assert event_candidates(policy, batch) == [Candidate("team/web/frontend", "", D1)]


def test_a_verified_signature_matters_only_to_policies_requiring_signatures() -> None:
    policy = _policy(trigger=TriggerKind.EVENT_BASED)
    batch = [
        Event(events.SIGNATURE_VERIFIED, 7, "team/app", None, D1),
        Event(events.SIGNATURE_REFUSED, 7, "team/app", None, D2),
    ]
    assert event_candidates(policy, batch) == []
    assert event_candidates(policy, batch, signatures_matter=True) == [
        Candidate("team/app", "", D1)
    ]


def test_the_project_criteria_apply_and_a_policy_can_only_tighten_them() -> None:
    project = Criteria(signed_only=True, severity="high")
    assert criteria_of(_policy(), project) == Criteria(True, "high")
    assert criteria_of(_policy(severity="critical"), project) == Criteria(True, "high")
    assert criteria_of(_policy(severity="low"), project) == Criteria(True, "low")
    assert criteria_of(_policy(signed_only=True), Criteria()) == Criteria(True, None)
    assert criteria_of(_policy(), Criteria()) == Criteria(False, None)


def test_project_criteria_filter_a_policy_without_its_own() -> None:
    verdicts = Verdicts(signed_digests={D1, D3}, clean_digests={D1})
    kept = filter_candidates(
        _policy(tags="v1"), CANDIDATES, verdicts, verdicts, Criteria(True, "medium")
    )
    assert kept == [Candidate("team/web/frontend", "v1", D1)]
    assert ("vulnerability:medium", D1) in verdicts.asked


def test_verdicts_are_read_once_per_digest() -> None:
    verdicts = Verdicts(signed_digests={D1})
    tags = [Candidate("team/app", tag, D1) for tag in ("a", "b", "c")]
    kept = filter_candidates(_policy(signed_only=True), tags, verdicts, verdicts)
    assert [c.tag for c in kept] == ["a", "b", "c"]
    assert verdicts.asked == [("signature", D1)]


def test_harbor_auth_mode_names_are_accepted() -> None:
    assert parse_auth_mode("OAUTH") is AuthMode.BEARER
    assert parse_auth_mode("NONE") == "none"
    assert parse_auth_mode("BASIC") == "basic"
    assert parse_auth_mode("bearer") == "bearer"
    assert parse_auth_mode("kerberos") == "kerberos"  # left for the validation to refuse


def test_the_provider_token_lives_as_long_as_the_job_may_run() -> None:
    short = PollShape(1, 30, job_timeout_seconds=90.5, heartbeat_seconds=10)
    long = PollShape(1, 30, job_timeout_seconds=7200, heartbeat_seconds=10)
    assert token_lifetime(short) == 91 + 60
    assert token_lifetime(long) == 7200 + 60


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"name": "Upper"}, "name"),
        ({"repositories": ""}, "repositories"),
        ({"tags": "x" * 256}, "tags"),
        ({"severity": "urgent"}, "severity"),
        ({"cluster_ids": (0,)}, "cluster_ids"),
        ({"trigger": TriggerKind.SCHEDULED}, "cron"),
        ({"trigger": TriggerKind.SCHEDULED, "cron": "daily"}, "cron"),
        ({"cron": "0 * * * *"}, "cron"),
    ],
)
def test_invalid_policy_names_the_field(changes: dict[str, object], field_name: str) -> None:
    data = PolicyInput(**{"name": "ok", "instance": "df", **changes})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as caught:
        check_policy(data)
    assert caught.value.field == field_name


def test_valid_policy_is_normalized() -> None:
    checked = check_policy(
        PolicyInput(
            "ok",
            "df",
            trigger=TriggerKind.SCHEDULED,
            cron=" 0  3 * * * ",
            cluster_ids=(3, 1, 3),
        )
    )
    assert checked.cron == "0 3 * * *"
    assert checked.cluster_ids == (1, 3)


def _task(status: TaskStatus) -> Task:
    return Task(1, "e", "team/a", "v1", D1, "", status)


def test_overall_status() -> None:
    assert str(overall_status([])) == "succeeded"
    assert str(overall_status([_task(TaskStatus.SUCCEEDED)])) == "succeeded"
    mixed = [_task(TaskStatus.SUCCEEDED), _task(TaskStatus.FAILED)]
    assert str(overall_status(mixed)) == "partial"
    assert str(overall_status([_task(TaskStatus.FAILED), _task(TaskStatus.PENDING)])) == "failed"
