"""Carry out changes to replication policies (``Executor``'s part).

Policies are addressed by id (read with the live state); an undo puts the previous
settings back, deletes a created policy, or creates a deleted one again (under a new id,
without its execution history, which stays with the old id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.ascode_plan import Change

Undo = Callable[[], object]
_PATH = "/api/v1/replication/policies"


def policy_body(doc: Any) -> dict[str, Any]:
    """The API body of a ``ReplicationPolicy`` document."""
    return {"name": doc.metadata.name, **doc.canonical_spec()}


class ReplicationKinds:
    """The ``_replicationpolicy`` handler."""

    ids: dict[tuple[str, str], int]
    _undo: list[tuple[str, Undo]]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def _create_policy(self, doc: Any) -> None:
        created = self._call("POST", _PATH, policy_body(doc))
        self.ids["ReplicationPolicy", doc.key()] = int(created["id"])
        path = f"{_PATH}/{created['id']}"
        self._undo.append(
            (f"delete replication policy {doc.key()}", lambda: self._call("DELETE", path))
        )

    def _replicationpolicy(self, change: Change) -> None:
        key = change.key
        if change.action == "create":
            self._create_policy(change.after)
            return
        path = f"{_PATH}/{self.ids['ReplicationPolicy', key]}"
        before = change.before
        if change.action == "delete":
            self._call("DELETE", path)
            body = policy_body(before)
            self._undo.append(
                (f"recreate replication policy {key}", lambda: self._call("POST", _PATH, body))
            )
            return
        self._call("PUT", path, policy_body(change.after))
        previous = policy_body(before)
        self._undo.append(
            (f"restore replication policy {key}", lambda: self._call("PUT", path, previous))
        )
