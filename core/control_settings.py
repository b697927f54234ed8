"""Settings of the control plane: garbage collection, the outbox, quotas, pull times."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ControlSettings(BaseModel):
    """How the control plane collects garbage, dispatches events and warns on quotas."""

    #: Seconds a blob or manifest waits in the review queue after it may have lost its
    #: last reference (GitLab's default: one day).
    gc_review_delay_seconds: int = Field(default=24 * 3600, ge=0)
    #: An object in storage without a row is deleted once it was seen this long ago.
    gc_orphan_grace_seconds: int = Field(default=24 * 3600, ge=0)
    #: Review rows one GC transaction takes.
    gc_batch_size: int = Field(default=100, ge=1, le=10_000)
    #: Interval of the scheduled GC run; 0 disables the schedule.
    gc_every_seconds: int = Field(default=24 * 3600, ge=0)
    #: Delete manifests with no tag, no parent index and no live subject on scheduled runs.
    gc_delete_untagged: bool = False
    #: Interval of the scheduled retention and quota reconciliation runs; 0 disables them.
    policy_every_seconds: int = Field(default=24 * 3600, ge=0)
    #: Seconds between outbox polls of the dispatcher when it found nothing to do.
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    #: Events the dispatcher takes per poll.
    outbox_batch_size: int = Field(default=100, ge=1, le=10_000)
    #: Most events in one subscriber batch (one workflow run per batch).
    event_batch_size: int = Field(default=100, ge=1, le=1_000)
    #: Longest a subscriber's partial batch waits for more events after its oldest one.
    event_batch_seconds: float = Field(default=2.0, ge=0)
    #: Heartbeat timeout of a batch's activity attempt: a batch whose worker died is
    #: retried on another worker after at most this long (its later batches wait as long).
    event_heartbeat_seconds: float = Field(default=30.0, ge=1.0, le=300.0)
    #: Seconds a dispatched outbox row (or a closed event batch) is kept before the
    #: dispatcher prunes it (at most ``outbox_batch_size`` rows per poll); 0 keeps them
    #: forever.
    outbox_keep_dispatched_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    #: A manifest's last pull time is written only when the stored one is at least this
    #: many seconds old: a hot manifest costs at most one write per interval.
    pull_time_granularity_seconds: int = Field(default=60, ge=0)
    #: Fraction of a quota at which a ``quota.warning`` event is written.
    quota_warning_ratio: float = Field(default=0.85, gt=0, le=1)
