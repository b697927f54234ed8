"""Carry out changes to webhooks, registry endpoints and proxy bindings (``Executor``'s part).

Write-only secrets are sent only when the plan asks for it: on creation, when one is
added, or when the document asks to rotate it (``core.ascode_outbound``); otherwise the
registry keeps what it holds. Undo limits, from the API's design: a secret the registry
held cannot be read back, so an undo that would need it (a webhook whose auth header was
replaced or removed, a deleted endpoint with credentials) restores every other setting
and reports the secret as not restored. A webhook created again by an undo gets a new
signing secret.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cli.apply_secrets import resolve
from core.ascode_outbound import STORED
from core.ascode_plan import Change

Undo = Callable[[], object]
_SECRET_FIELDS = {
    "Webhook": "auth_header",
    "RegistryEndpoint": "secret",
    "P2PInstance": "secret",
    "Scanner": "access_credential",
}


class NotRestoredError(RuntimeError):
    """An undo restored all it could; a write-only secret could not be."""


def secret_sent(change: Change) -> bool:
    """Whether ``change`` sends the document's write-only secret (resolved beforehand)."""
    name = _SECRET_FIELDS.get(change.kind)
    if name is None or change.after is None:
        return False
    wanted = change.after.canonical_spec()[name]
    if wanted is None or getattr(change.after.spec, name) == STORED:
        return False
    return change.action == "create" or any(field == name for field, _, _ in change.fields)


class OutboundKinds:
    """The ``_webhook``, ``_registryendpoint`` and ``_proxybinding`` handlers."""

    ids: dict[tuple[str, str], int]
    secrets: dict[str, str]
    _undo: list[tuple[str, Undo]]
    _sent: dict[tuple[str, str], str]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def resolve_outbound(self, change: Change) -> list[str]:
        """Read the secret ``change`` sends; the problem, if its reference names nothing.

        (Also a P2P instance's secret and a scanner's access credential, which
        ``cli.apply_preheat`` and ``cli.apply_scanners`` send.)
        """
        if not secret_sent(change):
            return []
        name = _SECRET_FIELDS[change.kind]
        try:
            self._sent[change.kind, change.key] = resolve(getattr(change.after.spec, name))
        except ValueError as exc:
            return [f"{change.kind} {change.key}: spec.{name}: {exc}"]
        return []

    # --- Webhook -----------------------------------------------------------------------

    @staticmethod
    def _hooks_path(doc: Any) -> str:
        project = doc.metadata.project
        return f"/api/v1/projects/{project}/webhooks" if project else "/api/v1/webhooks"

    @staticmethod
    def _hook_body(doc: Any, auth_header: str | None) -> dict[str, Any]:
        spec = doc.canonical_spec()
        body = {k: spec[k] for k in ("url", "events", "payload_format", "enabled")}
        return {"name": doc.metadata.name, **body, "auth_header": auth_header}

    def _webhook(self, change: Change) -> None:
        key = change.key
        if change.action == "create":
            self._create_hook(change.after, self._sent.get(("Webhook", key)))
            return
        path = f"{self._hooks_path(change.before)}/{self.ids['Webhook', key]}"
        before, had = change.before, change.before.spec.auth_header is not None
        if change.action == "delete":
            self._call("DELETE", path)
            self._undo.append((f"recreate webhook {key}", lambda: self._recreate_hook(before)))
            return
        header = self._sent.get(("Webhook", key))
        if header is None and change.after.spec.auth_header is None and had:
            header = ""  # removes the stored header
        self._call("PUT", path, self._hook_body(change.after, header))
        lost = had and header is not None

        def restore() -> None:
            self._call("PUT", path, self._hook_body(before, None if had else ""))
            if lost:
                raise NotRestoredError("its previous auth header cannot be restored")

        self._undo.append((f"restore webhook {key}", restore))

    def _create_hook(self, doc: Any, header: str | None) -> None:
        created = self._call("POST", self._hooks_path(doc), self._hook_body(doc, header))
        key, path = doc.key(), f"{self._hooks_path(doc)}/{created['id']}"
        self.ids["Webhook", key] = int(created["id"])
        self.secrets[f"webhook {key}"] = str(created["secret"])

        def forget() -> None:
            self.secrets.pop(f"webhook {key}", None)
            self._call("DELETE", path)

        self._undo.append((f"delete webhook {key}", forget))

    def _recreate_hook(self, doc: Any) -> None:
        self._call("POST", self._hooks_path(doc), self._hook_body(doc, None))
        if doc.spec.auth_header is not None:
            raise NotRestoredError("recreated with a new signing secret and without its header")

    # --- RegistryEndpoint --------------------------------------------------------------

    @staticmethod
    def _endpoint_body(doc: Any, secret: str | None) -> dict[str, Any]:
        spec = doc.spec.model_dump(mode="json", exclude={"secret", "secret_rotate"})
        return {"name": doc.metadata.name, **spec, "secret": secret}

    def _registryendpoint(self, change: Change) -> None:
        key, path = change.key, f"/api/v1/registries/{change.key}"
        secret = self._sent.get(("RegistryEndpoint", key))
        if change.action == "create":
            self._call("POST", "/api/v1/registries", self._endpoint_body(change.after, secret))
            self._undo.append((f"delete endpoint {key}", lambda: self._call("DELETE", path)))
            return
        before = change.before
        if change.action == "delete":
            self._call("DELETE", path)
            body = self._endpoint_body(before, None)
            self._undo.append(
                (f"recreate endpoint {key}", lambda: self._call("POST", "/api/v1/registries", body))
            )
            return
        self._call("PUT", path, self._endpoint_body(change.after, secret))
        lost = secret is not None and before.canonical_spec()["secret"] is not None

        def restore() -> None:
            self._call("PUT", path, self._endpoint_body(before, None))
            if lost:
                raise NotRestoredError("its previous secret cannot be restored")

        self._undo.append((f"restore endpoint {key}", restore))

    # --- ProxyBinding ------------------------------------------------------------------

    def _bind(self, path: str, doc: Any) -> None:
        if doc.spec.endpoint is None:
            self._call("DELETE", path)
        else:
            self._call("PUT", path, doc.spec.model_dump(mode="json"))

    def _proxybinding(self, change: Change) -> None:
        path, before = f"/api/v1/projects/{change.key}/proxy", change.before
        self._bind(path, change.after)
        self._undo.append((f"restore proxy {change.key}", lambda: self._bind(path, before)))
