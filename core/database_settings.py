"""Connection pool sizes of a Moorage process on PostgreSQL (``MOORAGE_DATABASE__*``).

Every API worker process and every ``moorage worker`` keeps its own pools, so the server's
``max_connections`` must allow, per process, ``pool_size + max_overflow`` connections plus
``async_read_connections`` for each API worker process. A request that finds the pool
exhausted waits up to ``pool_timeout_seconds`` for a connection, then fails as the
database being unavailable (503 with ``Retry-After``); nothing it had written is kept.
SQLite ignores these settings: its pools are sized for its own locking.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class DatabaseSettings(BaseModel):
    """PostgreSQL connection pools of one process (SQLite ignores them)."""

    #: Connections the pool keeps open once opened.
    pool_size: int = Field(default=16, ge=1, le=1000)
    #: Connections opened beyond ``pool_size`` under load and closed when returned.
    max_overflow: int = Field(default=16, ge=0, le=1000)
    #: Longest wait for a free connection before the request fails (503).
    pool_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: Connections per API event loop for the manifest reads awaited on it; 0 reads them
    #: on worker threads through the pool above instead.
    async_read_connections: int = Field(default=4, ge=0, le=100)

    @property
    def max_connections(self) -> int:
        """The most connections one process holds at once."""
        return self.pool_size + self.max_overflow + self.async_read_connections
