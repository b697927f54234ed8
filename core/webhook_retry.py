"""What a delivery attempt's outcome means: delivered, retry when, or stop the target.

Rules (Standard Webhooks' guidance): any 2xx is delivered; ``410 Gone`` disables the
target; ``429`` and ``503`` are retried no earlier than their ``Retry-After``; every other
answer (3xx included: redirects are never followed), a refused destination, a timeout or
a closed connection is retried with exponential backoff and jitter, until the event is
older than the maximum age.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from core.webhook_settings import WebhookSettings

_GONE = 410
_THROTTLED = frozenset({429, 503})
_OK_LOW, _OK_HIGH = 200, 300


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"


def verdict(status: int | None) -> Verdict:
    """The meaning of an answer's status (``None``: no answer)."""
    if status is not None and _OK_LOW <= status < _OK_HIGH:
        return Verdict.DELIVERED
    if status == _GONE:
        return Verdict.GONE
    return Verdict.RETRY


def retry_after(status: int | None, header: str | None, now: datetime) -> float | None:
    """Seconds a 429/503 asks to wait (delta-seconds or an HTTP date), else ``None``."""
    if status not in _THROTTLED or not header:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def backoff(attempts: int, settings: WebhookSettings, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (with jitter)."""
    base = settings.retry_initial_seconds * settings.retry_factor ** max(0, attempts - 1)
    base = min(base, settings.retry_max_interval_seconds)
    jitter = (rng or random.SystemRandom()).uniform(0, settings.retry_jitter * base)
    return min(base + jitter, settings.retry_max_interval_seconds)


@dataclass(frozen=True, slots=True)
class NextStep:
    """What to do with a failed delivery: retry at ``at``, or give up (``at`` is None)."""

    at: datetime | None
    reason: str


def next_attempt(
    *,
    attempts: int,
    event_time: datetime,
    now: datetime,
    throttle: float | None,
    settings: WebhookSettings,
    rng: random.Random | None = None,
) -> NextStep:
    """When a delivery that failed its ``attempts``-th time is tried again, if ever."""
    wait = backoff(attempts, settings, rng)
    if throttle is not None:
        wait = min(max(wait, throttle), settings.retry_max_interval_seconds)
    at = now + timedelta(seconds=wait)
    if at - event_time > timedelta(seconds=settings.max_age_seconds):
        return NextStep(None, f"given up after {attempts} attempts (maximum age reached)")
    return NextStep(at, "throttled" if throttle is not None else "retrying")


def should_pause(failing_since: datetime | None, now: datetime, settings: WebhookSettings) -> bool:
    """Whether a target failing since ``failing_since`` has failed long enough to pause."""
    if failing_since is None:
        return False
    return now - failing_since >= timedelta(seconds=settings.pause_after_seconds)
