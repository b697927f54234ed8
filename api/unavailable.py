"""Failures of a dependency the data plane needs, answered as 503 instead of 500.

While the database or the blob store cannot be reached (a restart, a network cut), a
request fails with the driver's connection error. That is not a bug of the request: the
client may retry it, and a load balancer takes the process out of its pool once
``/readyz`` fails. These errors become ``503 UNAVAILABLE`` with ``Retry-After`` on
``/v2`` (the OCI error body) and a 503 problem on ``/api/v1``; nothing was stored by the
failed request beyond what its own transaction committed.
"""

from __future__ import annotations

from typing import Final

from botocore.exceptions import ConnectionError as StoreConnectionError
from botocore.exceptions import HTTPClientError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from core.errors import OCIErrorCode, RegistryError

#: Seconds a client is asked to wait before it retries.
RETRY_AFTER: Final = "1"

#: Exceptions that may mean "a dependency did not answer" (:func:`dependency_of` decides):
#: the database driver's errors, no free pooled connection within the pool's timeout
#: (``MOORAGE_DATABASE__POOL_TIMEOUT_SECONDS``), and the object store client's connection,
#: connect-timeout and read-timeout errors.
DEPENDENCY_ERRORS: Final[tuple[type[Exception], ...]] = (
    DBAPIError,
    PoolTimeoutError,
    StoreConnectionError,
    HTTPClientError,
)


def unavailable_error(what: str) -> RegistryError:
    """The ``UNAVAILABLE`` error a request gets while ``what`` does not answer."""
    return RegistryError(
        OCIErrorCode.UNAVAILABLE, f"the {what} is unavailable; retry later"
    ).with_headers(**{"Retry-After": RETRY_AFTER})


def dependency_of(exc: Exception) -> str | None:
    """Which dependency ``exc`` says is unreachable (``database``, ``blob store``), if any."""
    if isinstance(exc, (OperationalError, PoolTimeoutError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return "database"
    if isinstance(exc, (StoreConnectionError, HTTPClientError)):
        return "blob store"
    return None
