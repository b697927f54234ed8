"""Liveness and readiness over HTTP with the real database, blob store and no Temporal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import LimitSettings, Settings, TemporalSettings
from tests.services.process import free_port


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # NOTE: nothing listens on the Temporal port: Temporal is down.
    closed = f"127.0.0.1:{free_port()}"
    settings = Settings(data_dir=tmp_path, temporal=TemporalSettings(address=closed))
    prepare_installation(settings)
    return settings


def test_liveness_answers(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").json() == {"status": "ok"}
        assert client.get("/healthz").status_code == 200


def test_temporal_down_is_degraded_but_ready(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        short = client.get("/readyz")
        assert short.status_code == 200
        assert short.json() == {"ready": True, "status": "degraded"}

        verbose = client.get("/readyz?verbose")
        assert verbose.status_code == 200
        checks = verbose.json()["checks"]
        assert set(checks) == {"database", "storage", "temporal", "disk_space"}
        assert checks["disk_space"]["status"] == "ok"
        assert checks["database"]["status"] == "ok"
        assert checks["storage"]["status"] == "ok"
        assert checks["temporal"]["status"] == "error"
        assert checks["temporal"]["required"] is False
        assert checks["temporal"]["error"]
        assert all(check["latency_ms"] >= 0 for check in checks.values())


def test_blob_store_down_is_unready(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        root = settings.resolved_blob_root
        shutil.rmtree(root)
        root.write_text("not a directory")  # the blob root is gone: storage fails
        answer = client.get("/readyz?verbose")
        assert answer.status_code == 503
        body = answer.json()
        assert body["ready"] is False
        assert body["status"] == "unavailable"
        assert body["checks"]["storage"]["status"] == "error"
        assert body["checks"]["database"]["status"] == "ok"
        assert client.get("/livez").status_code == 200


def test_low_disk_space_is_degraded_but_ready(settings: Settings) -> None:
    free = shutil.disk_usage(settings.data_dir).free
    # NOTE: asking for more than the disk has free makes the space check fail.
    low = settings.model_copy(update={"limits": LimitSettings(min_free_bytes=free * 2)})
    with TestClient(create_app(low)) as client:
        answer = client.get("/readyz?verbose")
        assert answer.status_code == 200
        body = answer.json()
        assert body["ready"] is True
        assert body["status"] == "degraded"
        space = body["checks"]["disk_space"]
        assert space["status"] == "error"
        assert space["required"] is False
        assert str(settings.data_dir.resolve()) in space["error"]


def test_no_space_check_when_turned_off(settings: Settings) -> None:
    off = settings.model_copy(update={"limits": LimitSettings(min_free_bytes=0)})
    with TestClient(create_app(off)) as client:
        checks = client.get("/readyz?verbose").json()["checks"]
        assert set(checks) == {"database", "storage", "temporal"}
