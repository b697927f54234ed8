"""The API's dependencies for readiness.

The database and the blob store are required; Temporal and free space on local disks
(``core.disk_space``) are not.
"""

from __future__ import annotations

import anyio.to_thread

from api.context import Registry
from core.disk_space import check_free_space, local_write_paths
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

    local_paths = local_write_paths(registry.settings)
    minimum = registry.settings.limits.min_free_bytes

    async def disk_space() -> None:
        await anyio.to_thread.run_sync(check_free_space, local_paths, minimum)

    dependencies = [
        Dependency("database", database),
        Dependency("storage", storage),
        Dependency("temporal", temporal, required=False),
    ]
    if local_paths and minimum > 0:
        dependencies.append(Dependency("disk_space", disk_space, required=False))
    return dependencies
