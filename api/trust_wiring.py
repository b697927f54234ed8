"""The API's content trust pieces: the management service and the signature pull gate.

The gate joins the ``/v2`` pipeline at the before-manifest-served point
(``core.pipeline``); its costs and staleness bounds are those of ``core.trust_gate``.
A manifest of a project without an enforced policy passes after one dictionary lookup;
otherwise a recent verdict is used, else the check runs in a worker thread. The policies
are loaded when the app is built and reloaded in a thread of their own after a response
once older than ``trust.policy_cache_seconds``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from functools import partial

import anyio.to_thread

from api.context import Registry, identity_of
from core.access import Identity
from core.pipeline import Hooks, OCIRequest
from core.records import ManifestRecord
from core.trust import TrustService
from core.trust_gate import TrustGate
from storage.db.trust import SqlTrustStore

logger = logging.getLogger(__name__)

_SERVICE, _GATE = "trust", "trust_gate"
#: Name of the thread that reloads the policies.
RELOAD_THREAD = "trust-policies"


def _may_push(registry: Registry, identity: Identity, repository: str) -> bool:
    if identity.scopes is not None and "push" not in identity.scopes:
        return False
    project = registry.projects.find(repository.partition("/")[0])
    if project is None:
        return False
    rights = identity_of(registry).access.repository_rights(identity, project, repository)
    return "push" in rights


class TrustPullGate:
    """The hooks of the signature pull policy."""

    def __init__(self, gate: TrustGate) -> None:
        self._gate = gate

    async def manifest_serve(self, request: OCIRequest, manifest: ManifestRecord, /) -> None:
        """Refuse (``DENIED``) a manifest ``GET`` its project's trust policy does not allow.

        ``HEAD`` is not gated: it serves no content, and clients (notation, cosign)
        resolve the digest they sign with it, often before sending credentials.
        """
        if request.method != "GET":
            return
        repository = request.repository
        policy = None if repository is None else self._gate.policy_for(repository)
        if policy is None or repository is None or manifest.subject_digest is not None:
            return
        cached = self._gate.cached(policy, repository, manifest.digest)
        if cached is not None and cached.allowed:
            return
        await anyio.to_thread.run_sync(
            self._gate.check, policy, repository, manifest, request.identity
        )

    async def request_ended(self, request: OCIRequest, status: int, /) -> None:
        """Reload the policies in the background once they are stale."""
        del request, status
        if self._gate.claim_reload():
            threading.Thread(target=self._reload, name=RELOAD_THREAD, daemon=True).start()

    def _reload(self) -> None:
        try:
            self._gate.load()
        except Exception:
            logger.warning("could not reload the trust policies", exc_info=True)


def trust_of(registry: Registry) -> TrustService:
    service = registry.extras[_SERVICE]
    assert isinstance(service, TrustService)  # noqa: S101 - set by with_trust_hooks
    return service


def with_trust_hooks(registry: Registry, hooks: Hooks) -> Hooks:
    """``hooks`` plus the signature pull gate; builds the trust service."""
    store = registry.extras["trust_store"]
    assert isinstance(store, SqlTrustStore)  # noqa: S101 - set by the composition root
    gate = TrustGate(store, partial(_may_push, registry), registry.settings.trust)
    gate.load()
    registry.extras[_GATE] = gate
    registry.extras[_SERVICE] = TrustService(
        store, identity_of(registry).access, registry.metadata, gate.load
    )
    pull_gate = TrustPullGate(gate)
    return replace(
        hooks,
        manifest_serve=(*hooks.manifest_serve, pull_gate.manifest_serve),
        request_end=(*hooks.request_end, pull_gate.request_ended),
    )
