"""Management API: what this installation runs (``/api/v1/systeminfo``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from pydantic import BaseModel

from api.context import registry_of
from api.principal import require_caller
from core.version import moorage_version


class SystemInfo(BaseModel):
    version: str
    api_version: str = "v1"


@get("/api/v1/systeminfo", summary="Moorage's version (signed-in callers)", tags=["system"])
async def systeminfo(request: Request[Any, Any, Any]) -> SystemInfo:
    # NOTE: anonymous callers are refused: a version string helps an attacker pick exploits.
    await require_caller(request, registry_of(request))
    return SystemInfo(version=moorage_version())
