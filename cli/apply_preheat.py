"""Carry out changes to P2P instances and preheat policies (``Executor``'s part).

Both are addressed by id (read with the live state). An instance's write-only secret is
sent only when the plan asks for it (``cli.apply_outbound.secret_sent``; resolved with
the other secrets before any call); otherwise the registry keeps what it holds. Undo
limits, from the API's design: a secret the registry held cannot be read back, so an undo
that would need it (an instance whose secret was replaced or removed, a deleted instance
with a secret) restores every other setting and reports the secret as not restored. A
deleted policy created again by an undo gets a new id, without its execution history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cli.apply_outbound import NotRestoredError
from core.ascode_plan import Change

Undo = Callable[[], object]
INSTANCES = "/api/v1/p2p/instances"


def instance_body(doc: Any, secret: str | None) -> dict[str, Any]:
    """The API body of a ``P2PInstance`` (``secret`` ``None`` keeps the stored one)."""
    spec = doc.spec.model_dump(mode="json", exclude={"secret", "secret_rotate"})
    return {"name": doc.metadata.name, **spec, "secret": secret}


def policy_body(doc: Any) -> dict[str, Any]:
    """The API body of a ``PreheatPolicy``."""
    return {"name": doc.metadata.name, **doc.canonical_spec()}


def policies_path(project: str) -> str:
    return f"/api/v1/projects/{project}/preheat/policies"


class PreheatKinds:
    """The ``_p2pinstance`` and ``_preheatpolicy`` handlers."""

    ids: dict[tuple[str, str], int]
    _undo: list[tuple[str, Undo]]
    _sent: dict[tuple[str, str], str]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    # --- P2PInstance -------------------------------------------------------------------

    def _p2pinstance(self, change: Change) -> None:
        key = change.key
        secret = self._sent.get(("P2PInstance", key))
        if change.action == "create":
            created = self._call("POST", INSTANCES, instance_body(change.after, secret))
            self.ids["P2PInstance", key] = int(created["id"])
            path = f"{INSTANCES}/{created['id']}"
            self._undo.append((f"delete P2P instance {key}", lambda: self._call("DELETE", path)))
            return
        path, before = f"{INSTANCES}/{self.ids['P2PInstance', key]}", change.before
        had = before.canonical_spec()["secret"] is not None
        if change.action == "delete":
            self._call("DELETE", path)
            self._undo.append(
                (f"recreate P2P instance {key}", lambda: self._recreate_instance(before))
            )
            return
        self._call("PUT", path, instance_body(change.after, secret))
        keeps = change.after.canonical_spec()["secret"] is not None

        def restore() -> None:
            if had and not keeps:  # the registry holds no secret to put back
                raise NotRestoredError("not restored: its secret was removed")
            self._call("PUT", path, instance_body(before, None))
            if had and secret is not None:
                raise NotRestoredError("its previous secret cannot be restored")

        self._undo.append((f"restore P2P instance {key}", restore))

    def _recreate_instance(self, doc: Any) -> None:
        if doc.canonical_spec()["secret"] is not None:
            raise NotRestoredError("not recreated: its secret cannot be restored")
        self._call("POST", INSTANCES, instance_body(doc, None))

    # --- PreheatPolicy -----------------------------------------------------------------

    def _preheatpolicy(self, change: Change) -> None:
        key, doc = change.key, change.after or change.before
        base = policies_path(doc.metadata.project)
        if change.action == "create":
            created = self._call("POST", base, policy_body(change.after))
            self.ids["PreheatPolicy", key] = int(created["id"])
            path = f"{base}/{created['id']}"
            self._undo.append((f"delete preheat policy {key}", lambda: self._call("DELETE", path)))
            return
        path, before = f"{base}/{self.ids['PreheatPolicy', key]}", change.before
        if change.action == "delete":
            self._call("DELETE", path)
            body = policy_body(before)
            self._undo.append(
                (f"recreate preheat policy {key}", lambda: self._call("POST", base, body))
            )
            return
        self._call("PUT", path, policy_body(change.after))
        previous = policy_body(before)
        self._undo.append(
            (f"restore preheat policy {key}", lambda: self._call("PUT", path, previous))
        )
