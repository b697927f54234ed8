"""The API's webhook pieces: the policy service, and pull events from the ``/v2`` hooks.

Pull events (``manifest.pulled``) are written only while some enabled policy wants
``artifact.pulled``. Whether one does is cached for ``pull_subscriber_cache_seconds`` and
refreshed after a response was sent, so a manifest ``GET`` costs no database access at all
while nobody subscribes (two hook calls that check a flag), and one outbox insert after
the response while someone does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import anyio.to_thread

from adapters.master_key import secret_box
from adapters.webhook_http import webhook_http
from api.context import Registry, identity_of
from core import events
from core.pipeline import Hooks, OCIRequest
from core.sealing import SecretBox
from core.webhook_delivery import WebhookHttp
from core.webhook_events import WebhookEvent
from core.webhooks import WebhookService
from storage.db.webhooks import SqlWebhookStore

if TYPE_CHECKING:
    from core.records import ManifestRecord

logger = logging.getLogger(__name__)

_SERVICE, _HTTP, _BOX = "webhooks", "webhook_http", "webhook_box"
_PULL_NOTE = "webhook_pull"
#: Name of the thread that re-reads whether any policy wants pull events.
REFRESH_THREAD = "webhook-pull-flag"
_OK = 200


def build_webhooks(registry: Registry) -> None:
    """Put the webhook service and delivery client into ``registry.extras``."""
    settings = registry.settings
    store = registry.extras["webhook_store"]
    assert isinstance(store, SqlWebhookStore)  # noqa: S101 - set by the composition root
    http = webhook_http(settings)
    box = secret_box(settings)  # reads the master key once
    registry.extras[_SERVICE] = WebhookService(
        store,
        identity_of(registry).access,
        box,
        http.policy,
        settings.webhooks,
        partial(_wake, registry),
    )
    registry.extras[_HTTP] = http
    registry.extras[_BOX] = box


def _wake(registry: Registry, policy_id: int) -> None:
    with registry.metadata.write() as session:
        session.outbox.add(events.WEBHOOK_WAKE, data=str(policy_id))
        session.commit()


def webhooks_of(registry: Registry) -> WebhookService:
    service = registry.extras[_SERVICE]
    assert isinstance(service, WebhookService)  # noqa: S101 - set by build_webhooks
    return service


def webhook_http_of(registry: Registry) -> WebhookHttp:
    http: WebhookHttp = registry.extras[_HTTP]
    return http


def webhook_box_of(registry: Registry) -> SecretBox:
    box = registry.extras[_BOX]
    assert isinstance(box, SecretBox)  # noqa: S101 - set by build_webhooks
    return box


class PullEvents:
    """The hooks that turn manifest ``GET`` requests into ``manifest.pulled`` events."""

    def __init__(self, registry: Registry, store: SqlWebhookStore, ttl: float) -> None:
        self._registry, self._store, self._ttl = registry, store, ttl
        self._wanted = False
        self._checked_at = float("-inf")
        self._refreshing = threading.Lock()

    def _refresh(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            self._wanted = self._store.wants(str(WebhookEvent.ARTIFACT_PULLED))
            self._checked_at = time.monotonic()
        except Exception:
            logger.warning("could not check for pull subscribers", exc_info=True)
        finally:
            self._refreshing.release()

    async def manifest_served(self, request: OCIRequest, manifest: ManifestRecord, /) -> None:
        """Note the digest of a manifest about to be served (only while wanted)."""
        if self._wanted and request.method == "GET":
            request.notes[_PULL_NOTE] = (manifest.digest, manifest.media_type)

    async def request_ended(self, request: OCIRequest, status: int, /) -> None:
        """Write the pull event of a served manifest; refresh the cached flag when stale."""
        noted = request.notes.get(_PULL_NOTE)
        if noted is not None and status == _OK and request.repository:
            digest, media_type = noted
            identity = request.identity
            operator = identity.subject if identity is not None and identity.subject else None
            await anyio.to_thread.run_sync(
                self._write, request.repository, request.reference, digest, media_type, operator
            )
        if time.monotonic() - self._checked_at >= self._ttl and not self._refreshing.locked():
            # NOTE: its own thread, so no request waits for (or is charged with) the check.
            threading.Thread(target=self._refresh, name=REFRESH_THREAD, daemon=True).start()

    def _write(
        self,
        repository: str,
        reference: str | None,
        digest: str,
        media_type: str,
        operator: str | None,
    ) -> None:
        tag = reference if reference and not reference.startswith("sha256:") else None
        data = {"media_type": media_type, "operator": operator}
        with self._registry.metadata.write() as session:
            project = session.projects.get(repository.partition("/")[0])
            session.outbox.add(
                events.MANIFEST_PULLED,
                project_id=project.id if project is not None else None,
                repository=repository,
                digest=digest,
                tag=tag,
                data=json.dumps({k: v for k, v in data.items() if v}),
            )
            session.commit()


def with_webhook_hooks(registry: Registry, hooks: Hooks) -> Hooks:
    """``hooks`` plus the pull-event hooks (after the others at each point)."""
    build_webhooks(registry)
    store = registry.extras["webhook_store"]
    assert isinstance(store, SqlWebhookStore)  # noqa: S101 - set by build_webhooks
    pulls = PullEvents(registry, store, registry.settings.webhooks.pull_subscriber_cache_seconds)
    return replace(
        hooks,
        request_end=(*hooks.request_end, pulls.request_ended),
        manifest_serve=(*hooks.manifest_serve, pulls.manifest_served),
    )
