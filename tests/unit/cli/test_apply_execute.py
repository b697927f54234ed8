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
        self.refuse, self.refuse_body = refuse, refuse_body

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        del params
        self.calls.append((method, path))
        if (method, path) in self.refuse or (body is not None and body == self.refuse_body):
            raise ApiError({"status": 422, "detail": f"refused {method} {path}"})
        if method == "POST" and path.endswith("/robots"):
            return {"id": 7, "secret": "s3cret"}
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
