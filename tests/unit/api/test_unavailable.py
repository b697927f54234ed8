"""A database or blob store that does not answer is a 503 ``UNAVAILABLE``, not a 500.

The errors come from the real drivers: a PostgreSQL connection and an S3 request to a
loopback port where nothing listens, and a pool with no free connection within its timeout
(what a pool sized by ``MOORAGE_DATABASE__*`` does under more load than it holds). The
routes raise them the way a request handler sees them; the app uses the registry's
exception handlers (``api.errors``).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import sqlalchemy
from botocore.config import Config
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import TestClient
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import QueuePool

from api.errors import EXCEPTION_HANDLERS
from tests.services.process import LOOPBACK, free_port


def _database_error() -> DBAPIError:
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://moorage@{LOOPBACK}:{free_port()}/moorage",
        connect_args={"connect_timeout": 2},
    )
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("a connection to a closed port succeeded")


def _pool_timeout() -> PoolTimeoutError:
    engine = sqlalchemy.create_engine(
        "sqlite://", poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=0.05
    )
    try:
        with engine.connect(), engine.connect():
            pass
    except PoolTimeoutError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("a pool of one handed out two connections")


def _store_error() -> Exception:
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{LOOPBACK}:{free_port()}",
        aws_access_key_id="id",
        aws_secret_access_key="secret",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
    )
    try:
        client.head_bucket(Bucket="moorage")
    except Exception as exc:  # whatever the client raises is the subject
        return exc
    raise AssertionError("an S3 request to a closed port succeeded")


@pytest.fixture(scope="module")
def client() -> Any:
    errors = {"database": _database_error(), "pool": _pool_timeout(), "store": _store_error()}
    integrity = IntegrityError("INSERT", {}, Exception("duplicate key"))

    @get(["/v2/{what:str}/manifests/latest", "/api/v1/{what:str}"], sync_to_thread=False)
    def fail(what: FromPath[str]) -> None:
        if what == "integrity":
            raise integrity
        raise errors[what]

    app = Litestar(route_handlers=[fail], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("what", "named"), [("database", "database"), ("pool", "database"), ("store", "blob store")]
)
def test_unreachable_dependency_is_oci_unavailable(client: Any, what: str, named: str) -> None:
    response = client.get(f"/v2/{what}/manifests/latest")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    [error] = response.json()["errors"]
    assert error["code"] == "UNAVAILABLE"
    assert named in error["message"]


@pytest.mark.parametrize("what", ["database", "pool", "store"])
def test_unreachable_dependency_is_a_problem_on_management_routes(client: Any, what: str) -> None:
    response = client.get(f"/api/v1/{what}")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 503


def test_other_database_errors_stay_internal(client: Any) -> None:
    response = client.get("/v2/integrity/manifests/latest")
    assert response.status_code == 500
    assert response.json()["errors"][0]["code"] == "UNKNOWN"
