"""Carry out changes to scanner registrations and projects' scanners (``Executor``'s part).

A registration is addressed by name. Its write-only access credential is sent only when
the plan asks for it (``cli.apply_outbound.secret_sent``; resolved with the other secrets
before any call); otherwise the registry keeps what it holds. Undo limits, from the API's
design: a credential the registry held cannot be read back, so an undo that would need it
(a registration whose credential was replaced or removed, a deleted registration with a
credential) restores every other setting and reports the credential as not restored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cli.apply_outbound import NotRestoredError
from core.ascode_plan import Change

Undo = Callable[[], object]
SCANNERS = "/api/v1/scanners"


def scanner_body(doc: Any, credential: str | None) -> dict[str, Any]:
    """The API body of a ``Scanner`` (``credential`` ``None`` keeps the stored one)."""
    spec = doc.spec
    return {
        "name": doc.metadata.name,
        "description": spec.description,
        "url": spec.url,
        "auth": spec.auth.value,
        "access_credential": credential,
        "skip_cert_verify": spec.skip_cert_verify,
        "disabled": spec.disabled,
        "is_default": spec.default,
    }


class ScannerKinds:
    """The ``_scanner`` and ``_projectscanner`` handlers."""

    _undo: list[tuple[str, Undo]]
    _sent: dict[tuple[str, str], str]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def _scanner(self, change: Change) -> None:
        key, path = change.key, f"{SCANNERS}/{change.key}"
        credential = self._sent.get(("Scanner", key))
        if change.action == "create":
            self._call("POST", SCANNERS, scanner_body(change.after, credential))
            self._undo.append((f"delete scanner {key}", lambda: self._call("DELETE", path)))
            return
        before = change.before
        had = before.canonical_spec()["access_credential"] is not None
        if change.action == "delete":
            self._call("DELETE", path)
            self._undo.append((f"recreate scanner {key}", lambda: self._recreate_scanner(before)))
            return
        self._call("PUT", path, scanner_body(change.after, credential))
        keeps = change.after.canonical_spec()["access_credential"] is not None

        def restore() -> None:
            if had and not keeps:  # the registry holds no credential to put back
                raise NotRestoredError("not restored: its access credential was removed")
            self._call("PUT", path, scanner_body(before, None))
            if had and credential is not None:
                raise NotRestoredError("its previous access credential cannot be restored")

        self._undo.append((f"restore scanner {key}", restore))

    def _recreate_scanner(self, doc: Any) -> None:
        if doc.canonical_spec()["access_credential"] is not None:
            raise NotRestoredError("not recreated: its access credential cannot be restored")
        self._call("POST", SCANNERS, scanner_body(doc, None))

    def _projectscanner(self, change: Change) -> None:
        path, before = f"/api/v1/projects/{change.key}/scanner", change.before
        self._call("PUT", path, {"scanner": change.after.spec.scanner})
        previous = {"scanner": before.spec.scanner}
        self._undo.append(
            (f"restore scanner of {change.key}", lambda: self._call("PUT", path, previous))
        )
