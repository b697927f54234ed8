"""The OCI distribution error model: codes, their default messages and HTTP statuses.

Every failure the data plane reports is a :class:`RegistryError`; the API turns it into the
spec's ``{"errors": [{"code", "message", "detail"}]}`` body in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class OCIErrorCode(StrEnum):
    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    SIZE_INVALID = "SIZE_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    RANGE_INVALID = "RANGE_INVALID"
    UNKNOWN = "UNKNOWN"
    UNAVAILABLE = "UNAVAILABLE"


_DEFAULTS: dict[OCIErrorCode, tuple[str, int]] = {
    OCIErrorCode.BLOB_UNKNOWN: ("blob unknown to registry", 404),
    OCIErrorCode.BLOB_UPLOAD_INVALID: ("blob upload invalid", 400),
    OCIErrorCode.BLOB_UPLOAD_UNKNOWN: ("blob upload unknown to registry", 404),
    OCIErrorCode.DIGEST_INVALID: ("provided digest did not match uploaded content", 400),
    OCIErrorCode.MANIFEST_BLOB_UNKNOWN: (
        "manifest references a manifest or blob unknown to registry",
        400,
    ),
    OCIErrorCode.MANIFEST_INVALID: ("manifest invalid", 400),
    OCIErrorCode.MANIFEST_UNKNOWN: ("manifest unknown to registry", 404),
    OCIErrorCode.NAME_INVALID: ("invalid repository name", 400),
    OCIErrorCode.NAME_UNKNOWN: ("repository name not known to registry", 404),
    OCIErrorCode.SIZE_INVALID: ("provided length did not match content length", 400),
    OCIErrorCode.UNAUTHORIZED: ("authentication required", 401),
    OCIErrorCode.DENIED: ("requested access to the resource is denied", 403),
    OCIErrorCode.UNSUPPORTED: ("the operation is unsupported", 405),
    OCIErrorCode.TOOMANYREQUESTS: ("too many requests", 429),
    OCIErrorCode.RANGE_INVALID: ("requested range not satisfiable", 416),
    OCIErrorCode.UNKNOWN: ("unknown error", 500),
    OCIErrorCode.UNAVAILABLE: ("service unavailable", 503),
}


@dataclass(eq=False)
class RegistryError(Exception):
    """A failure reported to an OCI client with a spec error code.

    ``headers`` are added to the response (``Range`` on 416, ``Retry-After`` on 429).
    """

    code: OCIErrorCode
    message: str = ""
    detail: Any = None
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        message, status = _DEFAULTS[self.code]
        if not self.message:
            self.message = message
        if not self.status:
            self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def with_detail(self, detail: Any) -> RegistryError:
        return replace(self, detail=detail)

    def with_headers(self, **headers: str) -> RegistryError:
        return replace(self, headers={**self.headers, **headers})

    def body(self) -> dict[str, list[dict[str, Any]]]:
        entry: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}


class _FieldError(Exception):
    """An error about one request field.

    ``field`` is the field's name, dotted when nested (``permissions.0.repository``).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(_FieldError):
    """A management resource does not exist (or the caller may not know it does).

    With ``field``, the resource a request field names (a member's user) is unknown.
    """


class ConflictError(Exception):
    """A management resource already exists or is in a conflicting state."""


class ForbiddenError(_FieldError):
    """The caller is authenticated but may not perform the operation."""


class InvalidInputError(_FieldError):
    """A management request is well-formed but its values are not acceptable (422)."""


class InvalidNameError(InvalidInputError):
    """A repository name or pattern breaks the name grammar (400, like ``NAME_INVALID``)."""
