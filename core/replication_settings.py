"""Settings of replication (``Settings.replication``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReplicationSettings(BaseModel):
    """How executions copy.

    Attributes:
        local_url: Base URL the worker reaches this installation's own ``/v2`` at (the
            source of push policies; it authenticates with tokens it signs itself).
            Defaults to ``public_url``. Pull policies write in-process and need none.
        chunk_size: Bytes per ``PATCH`` of a chunked upload (raised to the destination's
            ``OCI-Chunk-Min-Length``); blobs up to this size go in one request.
        artifact_timeout_seconds: Bound of one artifact's copy attempt.
        heartbeat_seconds: A copy that reports no progress this long is retried.
        retry_initial_seconds: First back-off of a failed artifact copy (doubles).
        retry_max_seconds: Longest back-off between attempts.
        retry_attempts: Attempts per artifact before it counts as failed.
        referrer_depth: How deep referrers of referrers are followed.
        max_bytes_per_second: Cap of the bytes one worker process sends to destinations,
            over all its copies of all executions at once (0: none); a policy's
            ``bandwidth_kbps`` caps each of its copies on top of it.
        tasks_per_page: Pending tasks an execution's workflow reads at a time.
        tasks_per_run: Artifacts one workflow run of an execution copies before it
            continues as a new run (at the end of a page), which keeps each run's history
            far below Temporal's limits however many artifacts the execution has.
    """

    local_url: str | None = None
    chunk_size: int = Field(default=8 * 1024 * 1024, ge=1024)
    artifact_timeout_seconds: float = Field(default=3600.0, gt=0)
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    retry_initial_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    retry_attempts: int = Field(default=20, ge=1)
    referrer_depth: int = Field(default=3, ge=0, le=8)
    max_bytes_per_second: int = Field(default=0, ge=0)
    tasks_per_page: int = Field(default=250, ge=1, le=2000)
    tasks_per_run: int = Field(default=1000, ge=1, le=2000)
