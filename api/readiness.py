"""The API's dependencies for readiness: database and blob store required, Temporal not."""

from __future__ import annotations

import anyio.to_thread

from api.context import Registry
from core.readiness import Dependency


def api_dependencies(registry: Registry) -> list[Dependency]:
    """What the API's data plane needs (``core.readiness``), checked by ``/readyz``."""
    metadata, store = registry.metadata, registry.store

    async def database() -> None:
        await anyio.to_thread.run_sync(metadata.ping, abandon_on_cancel=True)

    async def storage() -> None:
        await anyio.to_thread.run_sync(store.ping, abandon_on_cancel=True)

    async def temporal() -> None:
        answer = await registry.extras["temporal_check"]()
        if answer != "ok":
            raise ConnectionError(answer)

    return [
        Dependency("database", database),
        Dependency("storage", storage),
        Dependency("temporal", temporal, required=False),
    ]
