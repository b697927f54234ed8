"""Webhook deliveries over the SSRF-safe outbound client (``core.webhook_delivery``)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from adapters.outbound_http import OutboundClient
from core.outbound import OutboundPolicy
from core.settings import Settings
from core.webhook_delivery import Answer, TransportError


class OutboundWebhookHttp:
    """``core.webhook_delivery.WebhookHttp`` on :class:`OutboundClient`.

    The destination is checked and pinned by the client at every call (a name that now
    resolves to a private address is refused before any byte is sent); redirects are
    returned as answers, never followed.
    """

    def __init__(self, client: OutboundClient) -> None:
        self._client = client

    @property
    def policy(self) -> OutboundPolicy:
        """The outbound policy every call is checked against."""
        return self._client.policy

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Answer:
        try:
            response = await self._client.request("POST", url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            text = str(exc)
            raise TransportError(
                f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            ) from exc
        return Answer(response.status, response.headers.get("retry-after"), response.body)

    async def aclose(self) -> None:
        await self._client.aclose()


def webhook_http(settings: Settings) -> OutboundWebhookHttp:
    """The delivery client of ``settings``: outbound policy, timeout, excerpt size."""
    policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)
    client = OutboundClient(
        policy,
        total_timeout=settings.webhooks.timeout_seconds,
        max_body_bytes=max(settings.webhooks.response_excerpt_bytes, 1),
    )
    return OutboundWebhookHttp(client)
