"""Failed-login limits hold across API processes: two apps on one database count together."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from core.identity_settings import LoginLimitSettings
from core.settings import Settings
from tests.api.identity_helpers import Api
from tests.api.oci import OCIClient

LIMIT = 4
Apps = tuple[TestClient, TestClient]  # type: ignore[type-arg]


@pytest.fixture
def apps(app_settings: Settings) -> Iterator[Apps]:
    limit = LoginLimitSettings(max_failures=LIMIT, window_seconds=60)
    settings = app_settings.model_copy(update={"login_limit": limit})
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        yield first, second


@pytest.fixture
def user(oci: OCIClient) -> tuple[str, str]:
    return Api(oci.client, (oci.username, oci.password)).user()


def _login(client: TestClient, auth: tuple[str, str]) -> int:  # type: ignore[type-arg]
    return client.get("/auth/token", auth=auth).status_code


def test_failures_split_across_processes_add_up(apps: Apps, user: tuple[str, str]) -> None:
    first, second = apps
    wrong = (user[0], "not-the-password")
    for attempt in range(LIMIT):
        assert _login(apps[attempt % 2], wrong) == 401
    for client in (first, second):
        refused = client.get("/auth/token", auth=user)
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert client.get("/api/v1/projects", auth=user).status_code == 429


def test_a_successful_login_clears_the_count(apps: Apps, user: tuple[str, str]) -> None:
    first, second = apps
    wrong = (user[0], "not-the-password")
    for _ in range(LIMIT - 1):
        assert _login(first, wrong) == 401
    assert _login(second, user) == 200  # clears the count on both
    for _ in range(LIMIT - 1):
        assert _login(second, wrong) == 401
    assert _login(first, user) == 200
    assert _login(first, wrong) == 401
    for _ in range(LIMIT - 1):
        assert _login(second, wrong) == 401
    assert _login(first, user) == 429
    assert _login(second, user) == 429
