"""The one place where failures become HTTP responses.

OCI routes answer with the distribution spec's error body; management routes with RFC
9457 problem details. HEAD responses never carry a body. Unexpected exceptions become
``UNKNOWN`` (500) without leaking internals.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    OCIErrorCode,
    RegistryError,
)

_log = logging.getLogger("moorage.api")
PROBLEM_JSON = "application/problem+json"


def _is_management(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/api/")


def oci_error_response(request: Request[Any, Any, Any], error: RegistryError) -> Response[Any]:
    headers = dict(error.headers)
    if request.method == "HEAD":
        return Response(content=b"", status_code=error.status, headers=headers)
    return Response(
        content=error.body(),
        status_code=error.status,
        headers=headers,
        media_type="application/json",
    )


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> Response[Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON)


def handle_registry_error(request: Request[Any, Any, Any], exc: RegistryError) -> Response[Any]:
    if _is_management(request):
        response = problem(exc.status, str(exc.code), exc.message)
        response.headers.update(exc.headers)
        return response
    return oci_error_response(request, exc)


def handle_domain_error(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, title = {
        NotFoundError: (404, "Not Found"),
        ConflictError: (409, "Conflict"),
        ForbiddenError: (403, "Forbidden"),
        InvalidInputError: (422, "Unprocessable Content"),
    }[type(exc)]
    return problem(status, title, str(exc))


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if _is_management(request) or not request.url.path.startswith("/v2"):
        return problem(exc.status_code, str(exc.detail))
    code = {
        404: OCIErrorCode.NAME_UNKNOWN,
        405: OCIErrorCode.UNSUPPORTED,
        413: OCIErrorCode.SIZE_INVALID,
    }.get(exc.status_code, OCIErrorCode.UNSUPPORTED)
    return oci_error_response(request, RegistryError(code, str(exc.detail), status=exc.status_code))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if _is_management(request):
        return problem(500, "Internal Server Error")
    return oci_error_response(request, RegistryError(OCIErrorCode.UNKNOWN))


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    RegistryError: handle_registry_error,
    NotFoundError: handle_domain_error,
    ConflictError: handle_domain_error,
    ForbiddenError: handle_domain_error,
    InvalidInputError: handle_domain_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
