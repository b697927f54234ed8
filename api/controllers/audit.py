"""Management API: the audit log.

Management API: the audit log, system-wide (administrators) and per project
(``log:list``, project admins), with filters, id-cursor pagination and JSON lines.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from api.auth import require_admin
from api.context import identity_of, registry_of
from api.principal import require_caller
from core.audit import AuditQuery, StoredAuditEvent


def _query(request: Request[Any, Any, Any], project: str | None) -> AuditQuery:
    params = request.query_params

    def when(name: str) -> datetime | None:
        value = params.get(name)
        return datetime.fromisoformat(value) if value else None

    limit = int(params.get("limit") or 100)
    return AuditQuery(
        actor=params.get("actor"),
        action=params.get("action"),
        project=project or params.get("project"),
        result=params.get("result"),
        since=when("since"),
        until=when("until"),
        after_id=int(params.get("after") or 0),
        limit=max(1, min(limit, 1000)),
    )


def _page(events: list[StoredAuditEvent], limit: int, jsonl: bool) -> Response[Any]:
    more, events = len(events) > limit, events[:limit]
    if jsonl:
        body = "".join(json.dumps(e.as_dict(), sort_keys=True) + "\n" for e in events)
        return Response(content=body.encode(), media_type="application/x-ndjson")
    return Response(
        content={
            "items": [e.as_dict() for e in events],
            "next": str(events[-1].id) if more and events else None,
        }
    )


async def _serve(
    request: Request[Any, Any, Any], project: str | None, fmt: str | None
) -> Response[Any]:
    registry = registry_of(request)
    query = _query(request, project)
    wider = replace(query, limit=query.limit + 1)
    events = await anyio.to_thread.run_sync(identity_of(registry).audit.query, wider)
    return _page(events, query.limit, (fmt or request.query_params.get("format")) == "jsonl")


@get("/api/v1/audit", summary="Query the audit log (administrators)", tags=["audit"])
async def audit_log(
    request: Request[Any, Any, Any], output: FromQuery[str | None] = None
) -> Response[Any]:
    await require_admin(request, registry_of(request))
    return await _serve(request, None, output)


@get("/api/v1/projects/{project:str}/audit", summary="Query a project's audit log", tags=["audit"])
async def project_audit_log(
    request: Request[Any, Any, Any],
    project: FromPath[str],
    output: FromQuery[str | None] = None,
) -> Response[Any]:
    registry = registry_of(request)
    caller = await require_caller(request, registry)
    require = identity_of(registry).access.require
    await anyio.to_thread.run_sync(require, caller, project, "log", "list")
    return await _serve(request, project, output)
