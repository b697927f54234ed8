"""Management API: the audit log.

The audit log, system-wide (administrators) and per project (``log:list``, project
admins), with filters, keyset pages by event id (``api.pagination``; ``after`` is the
older spelling of ``last``) and JSON lines (``format=jsonl``, paged alike, the next page
in the ``Link`` header).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, QueryParameter

from api.guards import project_permission, signed_in, system_admin
from api.pagination import IDS, Page, PageParams, Window
from core.audit import AuditQuery, StoredAuditEvent
from core.services.identity_services import IdentityServices


class AuditPage(Page[dict[str, Any]]):
    """Audit events, oldest first, by id."""


@dataclass(frozen=True, slots=True)
class _Filters:
    actor: str | None
    action: str | None
    project: str | None
    result: str | None
    since: datetime | None
    until: datetime | None

    def query(self, after: int | None, count: int) -> AuditQuery:
        return AuditQuery(
            actor=self.actor,
            action=self.action,
            project=self.project,
            result=self.result,
            since=self.since,
            until=self.until,
            after_id=after or 0,
            limit=count,
        )


def provide_filters(
    actor: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
    result: FromQuery[str | None] = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
) -> _Filters:
    return _Filters(actor, action, None, result, since, until)


_FILTERS = {"filters": Provide(provide_filters, sync_to_thread=False)}


def _id(event: StoredAuditEvent) -> int:
    return event.id


async def _serve(
    request: Request[Any, Any, Any],
    identity_services: IdentityServices,
    filters: _Filters,
    page: PageParams,
    *,
    after: str | None,
    jsonl: bool,
) -> Response[Any]:
    if page.last is None and after is not None:
        page = replace(page, last=after, cursor_name="after")
    audit = identity_services.audit
    window: Window[StoredAuditEvent] = await page.fetch(
        lambda after_id, count: audit.query(filters.query(after_id, count)), key=_id, cursor=IDS
    )
    events = [e.as_dict() for e in window.items]
    if jsonl:
        body = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
        return Response(
            content=body.encode(), media_type="application/x-ndjson", headers=window.link(request)
        )
    return window.respond(request, AuditPage, events)


_FORMAT = QueryParameter(name="format", description="`jsonl` for JSON lines.")
_AFTER = QueryParameter(description="Older spelling of `last`.")


@get(
    "/api/v1/audit",
    summary="Query the audit log (administrators)",
    tags=["audit"],
    guards=[system_admin],
    dependencies=_FILTERS,
)
async def audit_log(
    request: Request[Any, Any, Any],
    identity_services: NamedDependency[IdentityServices],
    filters: NamedDependency[_Filters],
    page: NamedDependency[PageParams],
    project: Annotated[
        str | None, QueryParameter(description="Only this project's events.")
    ] = None,
    fmt: Annotated[str | None, _FORMAT] = None,
    after: Annotated[str | None, _AFTER] = None,
) -> Response[AuditPage]:
    scoped = replace(filters, project=project)
    jsonl = fmt == "jsonl"
    return await _serve(request, identity_services, scoped, page, after=after, jsonl=jsonl)


@get(
    "/api/v1/projects/{project:str}/audit",
    summary="Query a project's audit log",
    tags=["audit"],
    guards=[signed_in, project_permission("log", "list")],
    dependencies=_FILTERS,
)
async def project_audit_log(
    request: Request[Any, Any, Any],
    identity_services: NamedDependency[IdentityServices],
    filters: NamedDependency[_Filters],
    page: NamedDependency[PageParams],
    project: FromPath[str],
    fmt: Annotated[str | None, _FORMAT] = None,
    after: Annotated[str | None, _AFTER] = None,
) -> Response[AuditPage]:
    scoped = replace(filters, project=project)
    jsonl = fmt == "jsonl"
    return await _serve(request, identity_services, scoped, page, after=after, jsonl=jsonl)
