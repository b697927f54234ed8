"""The administration-as-code plan: pure comparison of desired and live documents."""

from __future__ import annotations

from typing import Any

import pytest

from core.ascode_models import DOCUMENT
from core.ascode_plan import Located, PlanError, make_plan


def doc(kind: str, metadata: dict[str, Any], spec: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {"apiVersion": "moorage.io/v1", "kind": kind, "metadata": metadata}
    if spec is not None:
        data["spec"] = spec
    return DOCUMENT.validate_python(data)


def located(*docs: Any) -> list[Located]:
    return [Located(f"f.yaml: document {i}", d) for i, d in enumerate(docs, start=1)]


ROBOT = {"permissions": [{"repository": "app", "actions": ["pull", "push"]}]}


def test_same_state_plans_nothing() -> None:
    live = [
        doc("Project", {"name": "team"}),
        doc("Robot", {"name": "ci", "project": "team"}, ROBOT),
    ]
    same = [
        doc("Project", {"name": "team"}, {"public": False}),
        # the same permissions in another order are the same robot
        doc(
            "Robot",
            {"name": "ci", "project": "team"},
            {"permissions": [{"repository": "app", "actions": ["push", "pull"]}]},
        ),
    ]
    assert make_plan(located(*same), live, prune=True) == []


def test_creations_come_in_dependency_order() -> None:
    changes = make_plan(
        located(
            doc("Member", {"project": "team", "robot": "robot$team+ci"}, {"role": "guest"}),
            doc("Robot", {"name": "ci", "project": "team"}, ROBOT),
            doc("Project", {"name": "team"}),
        ),
        [],
        prune=False,
    )
    assert [(c.action, c.kind) for c in changes] == [
        ("create", "Project"),
        ("create", "Robot"),
        ("create", "Member"),
    ]
    # each change names the document that asked for it (a failure report points there)
    assert [c.where for c in changes] == [
        "f.yaml: document 3",
        "f.yaml: document 2",
        "f.yaml: document 1",
    ]


def test_robot_permissions_force_a_replacement_and_expiry_an_update() -> None:
    live = [doc("Project", {"name": "t"}), doc("Robot", {"name": "ci", "project": "t"}, ROBOT)]
    more = {"permissions": [{"repository": "app", "actions": ["pull"]}]}
    [change] = make_plan(
        located(doc("Project", {"name": "t"}), doc("Robot", {"name": "ci", "project": "t"}, more)),
        live,
        prune=False,
    )
    assert (change.action, change.key) == ("replace", "robot$t+ci")
    dated = {**ROBOT, "expires_at": "2030-01-01T00:00:00+02:00"}
    [change] = make_plan(
        located(doc("Project", {"name": "t"}), doc("Robot", {"name": "ci", "project": "t"}, dated)),
        live,
        prune=False,
    )
    assert change.action == "update"
    assert change.fields == (("expires_at", None, "2029-12-31T22:00:00+00:00"),)


def test_a_naive_live_expiry_is_utc() -> None:
    live = doc("Robot", {"name": "ci"}, {**ROBOT, "expires_at": "2030-01-01T00:00:00"})
    wanted = doc("Robot", {"name": "ci"}, {**ROBOT, "expires_at": "2030-01-01T00:00:00Z"})
    assert make_plan(located(wanted), [live], prune=True) == []


def test_without_prune_nothing_absent_is_touched() -> None:
    live = [
        doc("Project", {"name": "a"}),
        doc("Project", {"name": "b"}),
        doc("Quota", {"project": "a"}, {"bytes": 5}),
        doc("Member", {"project": "a", "user": "dev"}, {"role": "guest"}),
    ]
    assert make_plan(located(doc("Project", {"name": "a"})), live, prune=False) == []


def test_prune_deletes_unnamed_objects_and_resets_policies_of_named_projects() -> None:
    live = [
        doc("User", {"name": "dev"}),
        doc("Project", {"name": "a"}),
        doc("Project", {"name": "b"}),
        doc("Quota", {"project": "a"}, {"bytes": 5}),
        doc("Quota", {"project": "b"}, {"bytes": 5}),
        doc("Member", {"project": "a", "user": "dev"}, {"role": "guest"}),
        doc("Member", {"project": "b", "user": "dev"}, {"role": "guest"}),
        doc("Robot", {"name": "sys"}, ROBOT),
    ]
    changes = make_plan(located(doc("Project", {"name": "a"})), live, prune=True)
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("update", "Quota", "a"),
        ("delete", "Member", "a/user:dev"),
        ("delete", "Robot", "robot$sys"),
        ("delete", "Project", "b"),
    ]
    assert changes[0].fields == (("bytes", 5, None),)


def test_every_problem_is_reported_before_anything() -> None:
    with pytest.raises(PlanError) as caught:
        make_plan(
            located(
                doc("Project", {"name": "a"}),
                doc("Project", {"name": "a"}, {"public": True}),
                doc("Quota", {"project": "nope"}),
                doc("Member", {"project": "a", "robot": "robot$ghost"}, {"role": "guest"}),
                doc("Member", {"project": "a", "robot": "robot$b+ci"}, {"role": "guest"}),
                doc("User", {"name": "new"}),
            ),
            [doc("Project", {"name": "b"}), doc("Robot", {"name": "ci", "project": "b"}, ROBOT)],
            prune=False,
        )
    problems = caught.value.problems
    assert problems == [
        "f.yaml: document 2: duplicate Project 'a' (first in f.yaml: document 1)",
        "f.yaml: document 3: metadata.project: no project 'nope' in the file or the registry",
        "f.yaml: document 4: metadata.robot: no robot 'robot$ghost' in the file or the registry",
        "f.yaml: document 5: metadata.robot: 'robot$b+ci' is a robot of project 'b', not of 'a'",
        (
            "f.yaml: document 6: spec.password: required to create user 'new' "
            "(a reference: env:NAME or file:/path)"
        ),
    ]


def test_with_prune_a_referenced_project_must_be_in_the_file() -> None:
    with pytest.raises(PlanError) as caught:
        make_plan(
            located(doc("Quota", {"project": "live"}, {"bytes": 1})),
            [doc("Project", {"name": "live"})],
            prune=True,
        )
    assert "with --prune it must be named in the file" in str(caught.value)


def test_issuer_changes_replace_it() -> None:
    spec = {"jwks_url": "https://i/jwks", "audience": "a", "permissions": [ROBOT["permissions"][0]]}
    live = doc("TrustedIssuer", {"name": "https://i"}, spec)
    changed = doc("TrustedIssuer", {"name": "https://i"}, {**spec, "audience": "b"})
    [change] = make_plan(located(changed), [live], prune=False)
    assert change.action == "replace"
    assert change.describe() == '-/+ TrustedIssuer https://i: audience: "a" -> "b"'


def test_a_replaced_robot_gets_its_members_back() -> None:
    member = {"project": "t", "robot": "robot$t+ci"}
    live = [
        doc("Project", {"name": "t"}),
        doc("Robot", {"name": "ci", "project": "t"}, ROBOT),
        doc("Member", member, {"role": "guest"}),
    ]
    narrower = {"permissions": [{"repository": "app", "actions": ["pull"]}]}
    wanted = [doc("Project", {"name": "t"}), doc("Robot", {"name": "ci", "project": "t"}, narrower)]
    changes = make_plan(located(*wanted), live, prune=False)
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("replace", "Robot", "robot$t+ci"),
        ("create", "Member", "t/robot:robot$t+ci"),
    ]
    assert [m.key() for m in changes[0].members] == ["t/robot:robot$t+ci"]
    # with --prune a member the file does not name stays gone with the old robot
    changes = make_plan(located(*wanted), live, prune=True)
    assert [(c.action, c.kind) for c in changes] == [("replace", "Robot")]


# --- webhooks, registry endpoints, proxy bindings -----------------------------------

HOOK = {"url": "https://hooks.example.test/x", "events": ["artifact.pushed", "tag.pushed"]}
ENDPOINT = {"url": "https://mirror.example.test", "credential": "basic", "username": "u"}


def test_write_only_secrets_compare_by_presence_not_value() -> None:
    live = [
        doc("Project", {"name": "team"}),
        doc("Webhook", {"name": "ci", "project": "team"}, {**HOOK, "auth_header": "stored"}),
        doc("RegistryEndpoint", {"name": "hub"}, {**ENDPOINT, "secret": "stored"}),
    ]
    same = [
        doc("Project", {"name": "team"}),
        # a reference for a header the registry holds: no change (its value is unknowable)
        doc(
            "Webhook",
            {"name": "ci", "project": "team"},
            {**HOOK, "events": ["tag.pushed", "artifact.pushed"], "auth_header": "env:HOOK"},
        ),
        doc("RegistryEndpoint", {"name": "hub"}, {**ENDPOINT, "secret": "file:/run/hub"}),
    ]
    assert make_plan(located(*same), live, prune=True) == []
    rotated = [
        *same[:2],
        doc(
            "RegistryEndpoint",
            {"name": "hub"},
            {**ENDPOINT, "secret": "file:/run/hub", "secret_rotate": True},
        ),
    ]
    [change] = make_plan(located(*rotated), live, prune=True)
    assert (change.action, change.kind, change.fields) == (
        "update",
        "RegistryEndpoint",
        (("secret", "set", "rotate"),),
    )
    # without the header in the file, it is removed
    removed = [same[0], doc("Webhook", {"name": "ci", "project": "team"}, HOOK), same[2]]
    [change] = make_plan(located(*removed), live, prune=True)
    assert (change.action, change.key, change.fields) == (
        "update",
        "team/ci",
        (("auth_header", "set", None),),
    )


def test_stored_secret_needs_one_in_the_registry_and_rotate_needs_a_reference() -> None:
    with pytest.raises(PlanError) as caught:
        make_plan(
            located(
                doc("Webhook", {"name": "all"}, {**HOOK, "auth_header": "stored"}),
                doc("RegistryEndpoint", {"name": "hub"}, {**ENDPOINT, "secret": "stored"}),
            ),
            [],
            prune=False,
        )
    assert [p.split(":")[0:2] for p in caught.value.problems] == [
        ["f.yaml", " document 1"],
        ["f.yaml", " document 2"],
    ]
    assert "spec.auth_header: 'stored'" in caught.value.problems[0]
    assert "spec.secret: 'stored'" in caught.value.problems[1]
    with pytest.raises(ValueError, match="auth_header_rotate needs auth_header as a reference"):
        doc("Webhook", {"name": "all"}, {**HOOK, "auth_header_rotate": True})
    with pytest.raises(ValueError, match="auth_header"):
        doc("Webhook", {"name": "all"}, {**HOOK, "auth_header": "Bearer inline"})
    with pytest.raises(ValueError, match="credential 'basic' needs a secret"):
        doc("RegistryEndpoint", {"name": "hub"}, ENDPOINT)
    with pytest.raises(ValueError, match="freshness_seconds and serve_stale need an endpoint"):
        doc("ProxyBinding", {"project": "team"}, {"freshness_seconds": 60})


def test_endpoints_come_before_projects_and_bindings_go_before_endpoints() -> None:
    changes = make_plan(
        located(
            doc("Webhook", {"name": "ci", "project": "cache"}, HOOK),
            doc("ProxyBinding", {"project": "cache"}, {"endpoint": "hub"}),
            doc("Project", {"name": "cache"}),
            doc("RegistryEndpoint", {"name": "hub"}, {**ENDPOINT, "secret": "env:HUB"}),
        ),
        [],
        prune=False,
    )
    assert [(c.action, c.kind) for c in changes] == [
        ("create", "RegistryEndpoint"),
        ("create", "Project"),
        ("create", "ProxyBinding"),
        ("create", "Webhook"),
    ]
    live = [
        doc("Project", {"name": "cache"}),
        doc("Project", {"name": "gone"}),
        doc("RegistryEndpoint", {"name": "hub"}, {**ENDPOINT, "secret": "stored"}),
        doc("ProxyBinding", {"project": "cache"}, {"endpoint": "hub"}),
        doc("Webhook", {"name": "ci", "project": "cache"}, HOOK),
        doc("Webhook", {"name": "old", "project": "gone"}, HOOK),
        doc("Webhook", {"name": "all"}, HOOK),
    ]
    changes = make_plan(located(doc("Project", {"name": "cache"})), live, prune=True)
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("update", "ProxyBinding", "cache"),  # reset to no proxy, before the endpoint goes
        ("delete", "Webhook", "cache/ci"),
        ("delete", "Webhook", "*/all"),
        ("delete", "Project", "gone"),  # with its webhook
        ("delete", "RegistryEndpoint", "hub"),
    ]
    assert make_plan(located(doc("Project", {"name": "cache"})), live, prune=False) == []


def test_a_binding_names_a_known_endpoint() -> None:
    live = [doc("RegistryEndpoint", {"name": "hub"}, {**ENDPOINT, "secret": "stored"})]
    binding = doc("ProxyBinding", {"project": "cache"}, {"endpoint": "hub"})
    with pytest.raises(PlanError) as caught:
        make_plan(located(doc("Project", {"name": "cache"}), binding), live, prune=True)
    assert caught.value.problems == [
        "f.yaml: document 2: spec.endpoint: no registry endpoint 'hub' in the file or the registry"
    ]
    changes = make_plan(located(doc("Project", {"name": "cache"}), binding), live, prune=False)
    assert [(c.action, c.kind) for c in changes] == [
        ("create", "Project"),
        ("create", "ProxyBinding"),
    ]


def test_security_kinds_compare_as_the_registry_stores_them_and_prune_resets_them() -> None:
    live = [
        doc("Project", {"name": "team"}),
        doc("TrustPolicy", {"project": "team"}, {"signatures": {"required_signers": 0}}),
        doc("ScanPolicy", {"project": "team"}, {"prevent_severity": "High"}),
        doc(
            "CveAllowlist",
            {"project": "team"},
            {"items": [{"id": "CVE-2024-0001", "expires_at": "2031-01-01T00:00:00+00:00"}]},
        ),
        doc("CveAllowlist", {}, {"items": [{"id": "CVE-2020-0002"}]}),
        doc("Project", {"name": "other"}),
        doc("ScanPolicy", {"project": "other"}, {"refuse_unscanned": True}),
    ]
    same = [
        *live[:4],
        # lower case, another zone and another order of entries: the same list
        doc(
            "CveAllowlist",
            {"project": "team"},
            {"items": [{"id": "cve-2024-0001", "expires_at": "2031-01-01T01:00:00+01:00"}]},
        ),
    ]
    assert make_plan(located(*same[:4], live[4]), live, prune=False) == []
    assert make_plan(located(same[0], same[1], same[2], same[4], live[4]), live, prune=False) == []

    # the project alone with --prune: its trust policy goes, its scan policy and
    # allowlist and the system allowlist are reset; the unnamed project goes whole
    changes = make_plan(located(live[0]), live, prune=True)
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("update", "ScanPolicy", "team"),
        ("update", "CveAllowlist", "team"),
        ("update", "CveAllowlist", "(system)"),
        ("delete", "TrustPolicy", "team"),
        ("delete", "Project", "other"),
    ]
    reset = {c.key: c.after.canonical_spec() for c in changes if c.kind == "CveAllowlist"}
    assert reset == {"team": {"items": []}, "(system)": {"items": []}}


def test_a_security_document_of_a_project_created_by_the_file_is_a_creation() -> None:
    changes = make_plan(
        located(
            doc("CveAllowlist", {}, {"items": [{"id": "CVE-1"}]}),
            doc("ScanPolicy", {"project": "new"}, {"scan_on_push": False}),
            doc("Project", {"name": "new"}),
        ),
        [doc("CveAllowlist", {}, {})],
        prune=False,
    )
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("create", "Project", "new"),
        ("create", "ScanPolicy", "new"),
        ("update", "CveAllowlist", "(system)"),
    ]


def test_one_p2p_instance_at_most_is_the_default() -> None:
    kraken = {"vendor": "kraken", "endpoint": "https://k.example.test"}
    with pytest.raises(PlanError) as caught:
        make_plan(
            located(
                doc("P2PInstance", {"name": "a"}, {**kraken, "default": True}),
                doc("P2PInstance", {"name": "b"}, {**kraken, "default": True}),
            ),
            [],
            prune=False,
        )
    assert "only one P2P instance can be the default" in str(caught.value)


def test_harbor_auth_mode_names_read_as_moorage_ones_so_nothing_changes() -> None:
    spec = {"vendor": "dragonfly", "endpoint": "https://d.example.test", "secret": "stored"}
    live = doc("P2PInstance", {"name": "d"}, {**spec, "auth_mode": "bearer", "insecure": True})
    wanted = doc("P2PInstance", {"name": "d"}, {**spec, "auth_mode": "OAUTH", "insecure": True})
    assert wanted.spec.auth_mode == "bearer"
    assert make_plan(located(wanted), [live], prune=False) == []


SCANNER = {"url": "https://trivy.example/adapter/", "auth": "Bearer", "access_credential": "stored"}


def test_a_projects_scanner_names_a_known_scanner_and_is_reset_before_it_goes() -> None:
    live = [
        doc("Project", {"name": "t"}),
        doc("Scanner", {"name": "trivy"}, SCANNER),
        doc("ProjectScanner", {"project": "t"}, {"scanner": "trivy"}),
    ]
    with pytest.raises(PlanError) as refused:
        make_plan(
            located(doc("ProjectScanner", {"project": "t"}, {"scanner": "clair"})),
            live,
            prune=False,
        )
    assert refused.value.problems == [
        "f.yaml: document 1: spec.scanner: no scanner 'clair' in the file or the registry"
    ]
    # the same URL with or without its slash is the same scanner
    same = [doc("Project", {"name": "t"}), live[1], live[2]]
    assert make_plan(located(*same), live, prune=True) == []
    changes = make_plan(located(doc("Project", {"name": "t"})), live, prune=True)
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("update", "ProjectScanner", "t"),
        ("delete", "Scanner", "trivy"),
    ]


def test_one_default_scanner_per_file_and_stored_needs_a_held_credential() -> None:
    first = doc("Scanner", {"name": "a"}, {"url": "https://a.example", "default": True})
    second = doc("Scanner", {"name": "b"}, {"url": "https://b.example", "default": True})
    with pytest.raises(PlanError) as refused:
        make_plan(located(first, second), [], prune=False)
    assert refused.value.problems == [
        (
            "f.yaml: document 2: spec.default: scanner 'b' is a second default (the first is "
            "'a', in f.yaml: document 1): at most one scanner is the default"
        )
    ]
    with pytest.raises(PlanError) as stored:
        make_plan(located(doc("Scanner", {"name": "c"}, SCANNER)), [], prune=False)
    assert "spec.access_credential: 'stored' keeps the value" in stored.value.problems[0]


def test_a_scanner_credential_is_never_inline() -> None:
    with pytest.raises(ValueError, match=r"(?s)access_credential.*should match pattern"):
        doc("Scanner", {"name": "a"}, {**SCANNER, "access_credential": "hunter2"})


RULE = {
    "target_project": "prod",
    "tags": "v*",
    "pusher": "robot$team+ci",
    "gates": {"signed": True},
}


def test_promotion_rules_name_a_known_target_and_prune_deletes_unnamed_ones() -> None:
    live = [
        doc("Project", {"name": "team"}),
        doc("Project", {"name": "prod"}),
        doc("PromotionRule", {"project": "team", "name": "old"}, RULE),
    ]
    wanted = [
        doc("Project", {"name": "team"}),
        doc("Project", {"name": "prod"}),
        doc("PromotionRule", {"project": "team", "name": "new"}, {**RULE, "tags": "rc-*"}),
    ]
    changes = make_plan(located(*wanted), live, prune=True)
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("create", "PromotionRule", "team/new"),
        ("delete", "PromotionRule", "team/old"),
    ]
    unknown = doc("PromotionRule", {"project": "team", "name": "x"}, {"target_project": "nope"})
    with pytest.raises(PlanError) as caught:
        make_plan(located(doc("Project", {"name": "team"}), unknown), [], prune=False)
    assert caught.value.problems == [
        "f.yaml: document 2: spec.target_project: no project 'nope' in the file or the registry"
    ]


def test_a_promotion_rule_the_registry_would_refuse_is_refused_with_its_field() -> None:
    with pytest.raises(ValueError, match=r"gates\.max_severity"):
        doc(
            "PromotionRule",
            {"project": "team", "name": "r"},
            {**RULE, "gates": {"max_severity": "x"}},
        )
    with pytest.raises(ValueError, match="pusher_kind"):
        doc("PromotionRule", {"project": "team", "name": "r"}, {**RULE, "pusher_kind": "scanner"})
