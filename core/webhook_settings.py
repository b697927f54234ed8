"""Settings of webhook delivery (``core.webhooks``): retries, pausing, timeouts."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WebhookSettings(BaseModel):
    """How webhook deliveries are retried, given up and how failing targets are paused.

    Retries of one delivery back off exponentially from ``retry_initial_seconds`` by
    ``retry_factor`` up to ``retry_max_interval_seconds``, with up to ``retry_jitter``
    (a fraction) of random extra delay; a ``Retry-After`` of a 429/503 answer is honoured
    (capped at the maximum interval). A delivery whose event is older than
    ``max_age_seconds`` is given up (``failed``). A target whose deliveries have failed
    without a success for ``pause_after_seconds`` is paused with the reason.
    """

    retry_initial_seconds: float = Field(default=5.0, gt=0)
    retry_factor: float = Field(default=3.0, ge=1)
    retry_max_interval_seconds: float = Field(default=3600.0, gt=0)
    retry_jitter: float = Field(default=0.2, ge=0, le=1)
    max_age_seconds: int = Field(default=3 * 24 * 3600, ge=1)
    pause_after_seconds: int = Field(default=24 * 3600, ge=1)
    #: Total time allowed for one delivery request (connect included).
    timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    #: Bytes of a receiver's answer kept in the delivery log.
    response_excerpt_bytes: int = Field(default=1024, ge=0, le=64 * 1024)
    #: How long a rotated-out signing secret still signs deliveries (both signatures sent).
    secret_overlap_seconds: int = Field(default=24 * 3600, ge=0)
    #: How long the API trusts its knowledge of whether any policy wants pull events.
    pull_subscriber_cache_seconds: float = Field(default=5.0, ge=0)
    #: How long finished deliveries (delivered or failed) stay in the delivery log, with
    #: their attempts; 0 keeps them forever. Pending deliveries are never pruned.
    log_keep_seconds: int = Field(default=30 * 24 * 3600, ge=0)
    #: Deliveries one round of a target's workflow sends before it reports progress.
    send_round: int = Field(default=100, ge=1, le=10_000)
