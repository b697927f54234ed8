"""Carrying out a plan: the undo of everything done when a later call fails (fake API)."""

from __future__ import annotations

from typing import Any

import pytest

from cli.api_client import ApiError
from cli.apply_execute import ApplyError, Executor
from core.ascode_models import DOCUMENT
from core.ascode_plan import Located, make_plan


class FakeApi:
    """Answers like the management API; refuses the calls named in ``refuse``."""

    def __init__(self, refuse: set[tuple[str, str]], refuse_body: Any = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.bodies: list[Any] = []
        self.refuse, self.refuse_body = refuse, refuse_body

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        del params
        self.calls.append((method, path))
        self.bodies.append(body)
        if (method, path) in self.refuse or (body is not None and body == self.refuse_body):
            raise ApiError({"status": 422, "detail": f"refused {method} {path}"})
        if method == "POST" and path.endswith("/robots"):
            return {"id": 7, "secret": "s3cret"}
        if method == "POST" and path.endswith("/webhooks"):
            return {"id": 5, "secret": "whsec"}
        if method == "POST":
            return {"id": 9}
        return None


def doc(kind: str, metadata: dict[str, Any], spec: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {"apiVersion": "moorage.io/v1", "kind": kind, "metadata": metadata}
    if spec is not None:
        data["spec"] = spec
    return DOCUMENT.validate_python(data)


def test_a_refused_call_undoes_every_call_before_it_and_hands_out_no_secret() -> None:
    wanted = [
        doc("Project", {"name": "t"}),
        doc(
            "Robot",
            {"name": "ci", "project": "t"},
            {"permissions": [{"repository": "a", "actions": ["pull"]}]},
        ),
        doc("Quota", {"project": "t"}, {"bytes": 5}),
        doc("Member", {"project": "t", "user": "ghost"}, {"role": "guest"}),
    ]
    changes = make_plan([Located(f"d{i}", d) for i, d in enumerate(wanted)], [], prune=False)
    api = FakeApi({("POST", "/api/v1/projects/t/members")})
    executor = Executor(api, {})  # type: ignore[arg-type]
    with pytest.raises(ApplyError) as caught:
        executor.run(changes)
    assert caught.value.problem["detail"] == "refused POST /api/v1/projects/t/members"
    assert caught.value.undo_failures == []
    assert api.calls == [
        ("POST", "/api/v1/projects"),
        ("POST", "/api/v1/projects/t/robots"),
        ("POST", "/api/v1/projects/t/members"),  # refused
        ("DELETE", "/api/v1/projects/t/robots/7"),
        ("DELETE", "/api/v1/projects/t"),
    ]
    assert executor.secrets == {}


def test_an_undo_that_fails_is_reported_and_the_others_still_run() -> None:
    changes = make_plan(
        [
            Located("d1", doc("Project", {"name": "t"})),
            Located("d2", doc("Project", {"name": "u"})),
        ],
        [],
        prune=False,
    )
    api = FakeApi({("DELETE", "/api/v1/projects/t")}, {"name": "u", "public": False})
    with pytest.raises(ApplyError) as caught:
        Executor(api, {}).run(changes)  # type: ignore[arg-type]
    assert caught.value.undo_failures == ["delete project t: refused DELETE /api/v1/projects/t"]


HOOK = {"url": "https://hooks.example.test/x", "events": ["gc.finished"]}


def test_outbound_changes_are_undone_and_a_lost_secret_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_AUTH", "Bearer new")
    monkeypatch.setenv("HUB_PW", "pw")
    live = [
        doc("Project", {"name": "t"}),
        doc("Webhook", {"name": "ci", "project": "t"}, {**HOOK, "auth_header": "stored"}),
    ]
    endpoint = {"url": "https://m.example.test", "credential": "basic", "username": "u"}
    wanted = [
        doc("Project", {"name": "t"}),
        doc("RegistryEndpoint", {"name": "hub"}, {**endpoint, "secret": "env:HUB_PW"}),
        doc("ProxyBinding", {"project": "t"}, {"endpoint": "hub"}),
        doc(
            "Webhook",
            {"name": "ci", "project": "t"},
            {**HOOK, "auth_header": "env:HOOK_AUTH", "auth_header_rotate": True},
        ),
        doc("Webhook", {"name": "all"}, HOOK),
        doc(
            "TrustedIssuer",
            {"name": "https://i.example.test"},
            {
                "jwks_url": "https://i.example.test/jwks",
                "audience": "moorage",
                "permissions": [{"repository": "t/*", "actions": ["pull"]}],
            },
        ),
    ]
    changes = make_plan([Located(f"d{i}", d) for i, d in enumerate(wanted)], live, prune=False)
    api = FakeApi({("POST", "/api/v1/trusted-issuers")})
    executor = Executor(api, {("Webhook", "t/ci"): 3})  # type: ignore[arg-type]
    assert executor.resolve_secrets(changes) == []
    with pytest.raises(ApplyError) as caught:
        executor.run(changes)
    assert api.calls == [
        ("POST", "/api/v1/registries"),
        ("PUT", "/api/v1/projects/t/proxy"),
        ("PUT", "/api/v1/projects/t/webhooks/3"),
        ("POST", "/api/v1/webhooks"),
        ("POST", "/api/v1/trusted-issuers"),  # refused
        ("DELETE", "/api/v1/webhooks/5"),
        ("PUT", "/api/v1/projects/t/webhooks/3"),
        ("DELETE", "/api/v1/projects/t/proxy"),
        ("DELETE", "/api/v1/registries/hub"),
    ]
    # the secrets are sent where the plan asks for them, and the undo keeps what is stored
    assert api.bodies[0]["secret"] == "pw"
    assert api.bodies[1] == {"endpoint": "hub", "freshness_seconds": None, "serve_stale": None}
    assert api.bodies[2]["auth_header"] == "Bearer new"
    assert api.bodies[3]["auth_header"] is None
    assert api.bodies[6]["auth_header"] is None
    assert caught.value.undo_failures == [
        "restore webhook t/ci: its previous auth header cannot be restored"
    ]
    assert executor.secrets == {}


def test_a_missing_secret_reference_is_refused_before_any_call() -> None:
    wanted = [doc("Webhook", {"name": "all"}, {**HOOK, "auth_header": "env:NOT_SET_ANYWHERE"})]
    changes = make_plan([Located("d1", d) for d in wanted], [], prune=False)
    api = FakeApi(set())
    problems = Executor(api, {}).resolve_secrets(changes)  # type: ignore[arg-type]
    assert problems == [
        (
            "Webhook */all: spec.auth_header: env:NOT_SET_ANYWHERE: "
            "the environment variable NOT_SET_ANYWHERE is not set"
        )
    ]
    assert api.calls == []


DRAGONFLY = {"vendor": "dragonfly", "endpoint": "https://df.example.test", "auth_mode": "bearer"}


def test_preheat_changes_send_a_rotated_secret_and_are_undone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DF_TOKEN", "tok-new")
    live = [
        doc("Project", {"name": "t"}),
        doc("P2PInstance", {"name": "df"}, {**DRAGONFLY, "secret": "stored"}),
        doc("PreheatPolicy", {"project": "t", "name": "old"}, {"instance": "df"}),
    ]
    wanted = [
        doc("Project", {"name": "t"}),
        doc(
            "P2PInstance",
            {"name": "df"},
            {**DRAGONFLY, "secret": "env:DF_TOKEN", "secret_rotate": True, "enabled": False},
        ),
        doc("P2PInstance", {"name": "kr"}, {"vendor": "kraken", "endpoint": "https://k.test/"}),
        doc("PreheatPolicy", {"project": "t", "name": "new"}, {"instance": "kr", "tags": "v*"}),
        doc(
            "TrustedIssuer",
            {"name": "https://i.example.test"},
            {
                "jwks_url": "https://i.example.test/jwks",
                "audience": "moorage",
                "permissions": [{"repository": "t/*", "actions": ["pull"]}],
            },
        ),
    ]
    changes = make_plan([Located(f"d{i}", d) for i, d in enumerate(wanted)], live, prune=True)
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("update", "P2PInstance", "df"),
        ("create", "P2PInstance", "kr"),
        ("create", "PreheatPolicy", "t/new"),
        ("create", "TrustedIssuer", "https://i.example.test"),
        ("delete", "PreheatPolicy", "t/old"),
    ]
    api = FakeApi({("POST", "/api/v1/trusted-issuers")})
    ids = {("P2PInstance", "df"): 2, ("PreheatPolicy", "t/old"): 4}
    executor = Executor(api, ids)  # type: ignore[arg-type]
    assert executor.resolve_secrets(changes) == []
    with pytest.raises(ApplyError) as caught:
        executor.run(changes)
    assert api.calls == [
        ("PUT", "/api/v1/p2p/instances/2"),
        ("POST", "/api/v1/p2p/instances"),
        ("POST", "/api/v1/projects/t/preheat/policies"),
        ("POST", "/api/v1/trusted-issuers"),  # refused
        ("DELETE", "/api/v1/projects/t/preheat/policies/9"),
        ("DELETE", "/api/v1/p2p/instances/9"),
        ("PUT", "/api/v1/p2p/instances/2"),
    ]
    assert (api.bodies[0]["secret"], api.bodies[0]["enabled"]) == ("tok-new", False)
    assert (api.bodies[1]["secret"], api.bodies[1]["endpoint"]) == (None, "https://k.test/")
    assert api.bodies[2]["instance"] == "kr"
    # the undo puts every other setting back and keeps the secret the registry now holds
    assert (api.bodies[6]["secret"], api.bodies[6]["enabled"]) == (None, True)
    assert caught.value.undo_failures == [
        "restore P2P instance df: its previous secret cannot be restored"
    ]


def test_scanner_changes_send_the_credential_where_asked_and_are_undone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCANNER_KEY", "k3y")
    open_scanner = {"url": "https://old.example.test"}
    keyed = {"url": "https://k.example.test", "auth": "Bearer", "access_credential": "stored"}
    live = [
        doc("Project", {"name": "t"}),
        doc("Scanner", {"name": "old"}, open_scanner),
        doc("Scanner", {"name": "keyed"}, keyed),
        doc("ProjectScanner", {"project": "t"}, {"scanner": "keyed"}),
    ]
    wanted = [
        doc("Project", {"name": "t"}),
        doc(
            "Scanner",
            {"name": "new"},
            {
                "url": "https://n.example.test",
                "auth": "X-ScannerAdapter-API-Key",
                "access_credential": "env:SCANNER_KEY",
                "default": True,
            },
        ),
        doc("ProjectScanner", {"project": "t"}, {"scanner": "new"}),
        doc("Webhook", {"name": "all"}, HOOK),
    ]
    changes = make_plan([Located(f"d{i}", d) for i, d in enumerate(wanted)], live, prune=True)
    api = FakeApi({("POST", "/api/v1/webhooks")})
    executor = Executor(api, {})  # type: ignore[arg-type]
    assert executor.resolve_secrets(changes) == []
    with pytest.raises(ApplyError) as caught:
        executor.run(changes)
    assert api.calls == [
        ("POST", "/api/v1/scanners"),
        ("PUT", "/api/v1/projects/t/scanner"),
        ("POST", "/api/v1/webhooks"),  # refused
        ("PUT", "/api/v1/projects/t/scanner"),
        ("DELETE", "/api/v1/scanners/new"),
    ]
    assert api.bodies[0]["access_credential"] == "k3y"
    assert api.bodies[0]["auth"] == "X-ScannerAdapter-API-Key"
    assert api.bodies[0]["is_default"] is True
    assert api.bodies[1] == {"scanner": "new"}
    assert api.bodies[3] == {"scanner": "keyed"}
    assert caught.value.undo_failures == []

    # deleted scanners come back, except the credential the registry held
    deletions = [c for c in changes if c.action == "delete"]
    assert {(c.kind, c.key) for c in deletions} == {("Scanner", "old"), ("Scanner", "keyed")}
    api = FakeApi({("POST", "/api/v1/webhooks")})
    executor = Executor(api, {})  # type: ignore[arg-type]
    with pytest.raises(ApplyError) as caught:
        executor.run([*deletions, next(c for c in changes if c.kind == "Webhook")])
    assert ("POST", "/api/v1/scanners") in api.calls
    assert caught.value.undo_failures == [
        "recreate scanner keyed: not recreated: its access credential cannot be restored"
    ]
