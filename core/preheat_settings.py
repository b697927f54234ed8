"""Settings of P2P preheat (``Settings.preheat``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PreheatSettings(BaseModel):
    """How preheat jobs are created and polled.

    Attributes:
        registry_url: Base URL providers fetch images from (what Dragonfly is told to
            pull). Defaults to ``public_url``, then ``replication.local_url``.
        poll_initial_seconds: First wait between two polls of a job (doubles).
        poll_max_seconds: Longest wait between two polls.
        job_timeout_seconds: A job not finished after this long counts as failed.
        heartbeat_seconds: The poll activity heartbeats at least this often; a worker
            silent for three times this long is replaced.
        concurrency: Candidates of one execution handled at the same time.
        timeout_seconds: Bound of one provider call.
        tasks_per_page: Pending tasks an execution's workflow reads at a time.
        tasks_per_run: Tasks one workflow run of an execution handles before it continues
            as a new run (at the end of a page), which keeps each run's history far below
            Temporal's limits however many artifacts the execution has.
    """

    registry_url: str | None = None
    poll_initial_seconds: float = Field(default=1.0, gt=0)
    poll_max_seconds: float = Field(default=30.0, gt=0)
    job_timeout_seconds: float = Field(default=3600.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=15.0, gt=0)
    tasks_per_page: int = Field(default=250, ge=1, le=2000)
    tasks_per_run: int = Field(default=500, ge=1, le=2000)
