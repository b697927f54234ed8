"""The failed-login rule on its own: windows, locks and limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.login_limit import LoginAttempts, LoginPolicy

POLICY = LoginPolicy(max_failures=3, window=timedelta(seconds=60))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fail(times: int, start: datetime, factor: int = 1) -> LoginAttempts | None:
    attempts = None
    for i in range(times):
        attempts = POLICY.after_failure(attempts, start + timedelta(seconds=i), factor)
    return attempts


def test_the_limit_locks_for_one_window() -> None:
    attempts = _fail(3, T0)
    assert attempts is not None
    assert attempts.locked_until == T0 + timedelta(seconds=62)
    assert POLICY.retry_after(attempts, T0 + timedelta(seconds=2)) == 60
    assert POLICY.retry_after(attempts, T0 + timedelta(seconds=62)) is None


def test_below_the_limit_nothing_is_locked() -> None:
    attempts = _fail(2, T0)
    assert attempts is not None
    assert attempts.locked_until is None
    assert POLICY.retry_after(attempts, T0) is None


def test_a_new_window_starts_the_count_again() -> None:
    attempts = _fail(2, T0)
    later = POLICY.after_failure(attempts, T0 + timedelta(seconds=61))
    assert later.failures == 1
    assert later.window_start == T0 + timedelta(seconds=61)


def test_the_factor_multiplies_the_limit() -> None:
    attempts = _fail(5, T0, factor=2)
    assert attempts is not None
    assert attempts.locked_until is None
    assert POLICY.after_failure(attempts, T0 + timedelta(seconds=5), 2).locked_until is not None


def test_failures_during_a_lock_do_not_extend_it() -> None:
    locked = _fail(3, T0)
    assert locked is not None
    again = POLICY.after_failure(locked, T0 + timedelta(seconds=30))
    assert again.locked_until == locked.locked_until
