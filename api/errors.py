"""The one place where failures become HTTP responses.

OCI routes answer with the distribution spec's error body; management routes with RFC
9457 problem details (``application/problem+json``). A management error about request
fields carries an ``errors`` list, one ``{"field", "pointer", "message"}`` entry per field:
``field`` is its dotted name (``permissions.0.repository``), ``pointer`` its RFC 6901
JSON pointer into the body (or the query parameter's name for query fields), ``message``
the rule it broke. HEAD responses never carry a body. A database or blob store that does not
answer is ``UNAVAILABLE`` (503, ``Retry-After``; ``api.unavailable``); storage with no space
left is ``507`` (``api.storage_full``). Unexpected exceptions become ``UNKNOWN`` (500)
without leaking internals.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_400_BAD_REQUEST

from api.storage_full import INSUFFICIENT_STORAGE, is_storage_full, storage_full_error
from api.unavailable import DEPENDENCY_ERRORS, dependency_of, unavailable_error
from core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
    OCIErrorCode,
    RegistryError,
)

_log = logging.getLogger("moorage.api")
PROBLEM_JSON = "application/problem+json"
#: On every ``/v2`` answer, errors too, as distribution sends it: clients built on its
#: client library (Kraken's registry backend) read the 401 of ``GET /v2/`` as a v2
#: registry only when it carries this header.
API_VERSION_HEADERS: Final = {"Docker-Distribution-API-Version": "registry/2.0"}


def _is_management(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/api/")


def oci_error_response(request: Request[Any, Any, Any], error: RegistryError) -> Response[Any]:
    headers = {**API_VERSION_HEADERS, **error.headers}
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


def field_error(field: str, message: str) -> dict[str, str]:
    """One entry of a problem's ``errors`` list (``field`` dotted, as ``a.0.b``)."""
    pointer = "/" + "/".join(
        part.replace("~", "~0").replace("/", "~1") for part in field.split(".")
    )
    return {"field": field, "pointer": pointer if field else "", "message": message}


def _validation_errors(extra: Any) -> list[dict[str, str]]:
    """The ``errors`` list of a request that failed schema validation."""
    entries = extra if isinstance(extra, list) else []
    errors = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        key, message = str(entry.get("key") or ""), str(entry.get("message") or "invalid value")
        if entry.get("source") in ("query", "path", "header", "cookie"):
            errors.append({"field": key, "pointer": "", "message": message})
        else:
            errors.append(field_error(key, message))
    return errors or [field_error("", "the request body is not valid")]


def handle_registry_error(request: Request[Any, Any, Any], exc: RegistryError) -> Response[Any]:
    if _is_management(request):
        response = problem(exc.status, str(exc.code), exc.message)
        response.headers.update(exc.headers)
        return response
    return oci_error_response(request, exc)


def handle_domain_error(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    answers: dict[type, tuple[int, str]] = {
        NotFoundError: (404, "Not Found"),
        ConflictError: (409, "Conflict"),
        ForbiddenError: (403, "Forbidden"),
        InvalidInputError: (422, "Unprocessable Content"),
        InvalidNameError: (400, "Bad Request"),
    }
    # NOTE: the nearest class in the exception's MRO answers (subclasses of the errors too)
    status, title = next(answers[kind] for kind in type(exc).__mro__ if kind in answers)
    field = getattr(exc, "field", None)
    if field is not None:
        return problem(status, title, str(exc), errors=[field_error(field, str(exc))])
    return problem(status, title, str(exc))


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if _is_management(request) or not request.url.path.startswith("/v2"):
        if isinstance(exc, ValidationException):
            errors = _validation_errors(exc.extra)
            return problem(400, "Bad Request", str(exc.detail), errors=errors)
        if exc.status_code == HTTP_400_BAD_REQUEST and _is_management(request):
            # NOTE: a body that is not JSON at all (or not an object) has no field to name.
            return problem(
                400, "Bad Request", str(exc.detail), errors=[field_error("", str(exc.detail))]
            )
        return problem(exc.status_code, str(exc.detail))
    code = {
        404: OCIErrorCode.NAME_UNKNOWN,
        405: OCIErrorCode.UNSUPPORTED,
        413: OCIErrorCode.SIZE_INVALID,
    }.get(exc.status_code, OCIErrorCode.UNSUPPORTED)
    return oci_error_response(request, RegistryError(code, str(exc.detail), status=exc.status_code))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if is_storage_full(exc):
        _log.error("storage full on %s %s: %s", request.method, request.url.path, exc)
        if _is_management(request):
            return problem(
                INSUFFICIENT_STORAGE, "Insufficient Storage", storage_full_error().message
            )
        return oci_error_response(request, storage_full_error())
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if _is_management(request):
        return problem(500, "Internal Server Error")
    return oci_error_response(request, RegistryError(OCIErrorCode.UNKNOWN))


def handle_dependency_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """503 ``UNAVAILABLE`` while the database or the blob store does not answer, else 500."""
    what = None if is_storage_full(exc) else dependency_of(exc)
    if what is None:
        return handle_unexpected(request, exc)
    _log.warning("%s unavailable on %s %s: %s", what, request.method, request.url.path, exc)
    return handle_registry_error(request, unavailable_error(what))


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    RegistryError: handle_registry_error,
    NotFoundError: handle_domain_error,
    ConflictError: handle_domain_error,
    ForbiddenError: handle_domain_error,
    InvalidInputError: handle_domain_error,
    InvalidNameError: handle_domain_error,
    HTTPException: handle_http_exception,
    **dict.fromkeys(DEPENDENCY_ERRORS, handle_dependency_error),
    Exception: handle_unexpected,
}
