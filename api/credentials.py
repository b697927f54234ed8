"""Credentials of a request: the one parser of ``Authorization`` headers in the API.

HTTP Basic (``username:password``, base64) and Bearer tokens; anything else, or a
malformed value, is no credential. This module imports nothing of the application, so
every caller (the ``/v2`` pipeline and its fast path, the token service, the management
API) can use it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Basic:
    """HTTP Basic credentials."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Bearer:
    """A bearer token (not yet verified)."""

    token: str


Credentials = Basic | Bearer


def parse(header: str | None) -> Credentials | None:
    """The credentials of an ``Authorization`` header value; ``None`` without usable ones."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if not value:
        return None
    scheme = scheme.lower()
    if scheme == "bearer":
        return Bearer(value)
    if scheme != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return Basic(username, password) if sep else None


def authorization_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Authorization`` value of raw ASGI headers."""
    for key, value in headers:
        if key.lower() == b"authorization":
            return bytes(value).decode("latin-1")
    return None


def scheme_of(header: str | None) -> str:
    """The scheme an ``Authorization`` value names (lower case; empty without one)."""
    return (header or "").partition(" ")[0].lower()
