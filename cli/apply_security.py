"""Carry out changes to trust policies, scan policies and CVE allowlists (``Executor``'s part).

Each is a whole document the API replaces (``PUT``), so an undo puts the previous one
back; a trust policy created is removed again (``DELETE``) and one removed is put back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.ascode_plan import Change

Undo = Callable[[], object]


def allowlist_path(doc: Any) -> str:
    project = doc.metadata.project
    return f"/api/v1/projects/{project}/scan-allowlist" if project else "/api/v1/scan-allowlist"


def trust_path(project: str) -> str:
    return f"/api/v1/projects/{project}/trust/policy"


class SecurityKinds:
    """The ``_trustpolicy`` and ``_cveallowlist`` handlers."""

    _undo: list[tuple[str, Undo]]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def _trustpolicy(self, change: Change) -> None:
        path, key = trust_path(change.key), change.key
        if change.action == "delete":
            self._call("DELETE", path)
        else:
            self._call("PUT", path, change.after.spec.model_dump(mode="json"))
        if change.before is None:
            self._undo.append((f"remove trust policy {key}", lambda: self._call("DELETE", path)))
            return
        previous = change.before.spec.model_dump(mode="json")
        self._undo.append(
            (f"restore trust policy {key}", lambda: self._call("PUT", path, previous))
        )

    def _cveallowlist(self, change: Change) -> None:
        path = allowlist_path(change.after)
        self._call("PUT", path, allowlist_body(change.after))
        previous = allowlist_body(change.before)
        self._undo.append(
            (f"restore CVE allowlist {change.key}", lambda: self._call("PUT", path, previous))
        )


def allowlist_body(doc: Any) -> dict[str, Any]:
    """The API body (and the exported spec): entries in UTC, without an absent expiry."""
    items = [
        {k: v for k, v in item.items() if v is not None} for item in doc.canonical_spec()["items"]
    ]
    return {"items": items}
