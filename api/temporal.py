"""Reachability of the Temporal server, for readiness."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from adapters.temporal_client import connect_temporal
from core.settings import TemporalSettings


class TemporalProbe:
    """Connects lazily and reports whether Temporal answers its health check."""

    def __init__(self, settings: TemporalSettings) -> None:
        self._settings = settings
        self._client: Client | None = None

    async def __call__(self) -> str:
        try:
            async with asyncio.timeout(5):
                if self._client is None:
                    self._client = await connect_temporal(self._settings)
                healthy = await self._client.service_client.check_health()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            self._client = None
            return f"error: {type(exc).__name__}"
        return "ok" if healthy else "error: not serving"
