"""When a failed webhook delivery is tried again, given up, or its target paused."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from core.webhook_retry import (
    Verdict,
    backoff,
    next_attempt,
    retry_after,
    should_pause,
    verdict,
)
from core.webhook_settings import WebhookSettings

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
SETTINGS = WebhookSettings(
    retry_initial_seconds=5,
    retry_factor=3,
    retry_max_interval_seconds=3600,
    retry_jitter=0.2,
    max_age_seconds=24 * 3600,
    pause_after_seconds=3600,
)


def test_2xx_delivers_410_is_gone_everything_else_retries() -> None:
    assert verdict(200) is verdict(204) is verdict(299) is Verdict.DELIVERED
    assert verdict(410) is Verdict.GONE
    for status in (None, 301, 302, 400, 404, 429, 500, 503):
        assert verdict(status) is Verdict.RETRY


def test_retry_after_of_429_and_503_in_seconds_or_as_a_date() -> None:
    assert retry_after(429, "7", NOW) == 7
    assert retry_after(503, format_datetime(NOW + timedelta(seconds=30)), NOW) == 30
    assert retry_after(500, "7", NOW) is None
    assert retry_after(429, "soon", NOW) is None
    assert retry_after(429, None, NOW) is None


def test_backoff_grows_exponentially_with_bounded_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    waits = [backoff(n, SETTINGS, rng) for n in range(1, 10)]
    for attempt, wait in enumerate(waits, start=1):
        base = min(5 * 3 ** (attempt - 1), 3600)
        assert base <= wait <= min(base * 1.2, 3600)
    assert waits[-1] == 3600


def test_throttling_waits_at_least_retry_after() -> None:
    step = next_attempt(
        attempts=1, event_time=NOW, now=NOW, throttle=120, settings=SETTINGS, rng=random.Random(2)
    )
    assert step.at is not None
    assert step.at - NOW >= timedelta(seconds=120)
    assert step.reason == "throttled"


def test_a_delivery_past_the_maximum_age_is_given_up() -> None:
    old = NOW - timedelta(seconds=SETTINGS.max_age_seconds)
    step = next_attempt(attempts=9, event_time=old, now=NOW, throttle=None, settings=SETTINGS)
    assert step.at is None
    assert "maximum age" in step.reason


def test_a_target_is_paused_after_failing_for_the_configured_time() -> None:
    assert not should_pause(None, NOW, SETTINGS)
    assert not should_pause(NOW - timedelta(minutes=59), NOW, SETTINGS)
    assert should_pause(NOW - timedelta(hours=1), NOW, SETTINGS)
