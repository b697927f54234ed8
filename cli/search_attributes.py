"""Registers Moorage's search attributes on a (separate) Temporal server."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.search_attributes import ALL_KEYS

if TYPE_CHECKING:
    from temporalio.client import Client

logger = logging.getLogger(__name__)

#: Bound on each operator call.
CALL_TIMEOUT: Final = 10.0


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register the keys of ``activities.search_attributes`` missing in the namespace.

    Idempotent: names already registered are skipped, and an "already exists" answer
    (another worker registering them at the same time) counts as success.

    Returns:
        The names this call registered.
    """
    namespace = client.namespace
    operator = client.operator_service
    existing = await operator.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace), timeout=_timeout()
    )
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in ALL_KEYS
        if key.name not in known
    }
    if not missing:
        return []
    try:
        await operator.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing),
            timeout=_timeout(),
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
    logger.info("registered search attributes %s", ", ".join(sorted(missing)))
    return sorted(missing)


def _timeout() -> timedelta:
    return timedelta(seconds=CALL_TIMEOUT)
