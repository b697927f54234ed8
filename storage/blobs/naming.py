"""Validation of the names blob stores turn into paths, keys and bucket names.

Every adapter checks tenant ids, upload ids and digests with these functions before
building a path or key from them, so that no input can address storage outside the
tenant's own tree (``..``, separators, NUL bytes, trailing newlines and the like).
"""

from __future__ import annotations

import re

from core.digests import Digest

_TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_UPLOAD_ID = re.compile(r"[a-zA-Z0-9-]{1,64}")
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")


def check_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is a valid tenant id, else raise ValueError."""
    if not isinstance(tenant, str) or _TENANT.fullmatch(tenant) is None:
        raise ValueError(f"invalid tenant id {tenant!r}")
    return tenant


def check_upload_id(upload_id: str) -> str:
    """Return ``upload_id`` if it is a valid upload id, else raise ValueError."""
    if not isinstance(upload_id, str) or _UPLOAD_ID.fullmatch(upload_id) is None:
        raise ValueError(f"invalid upload id {upload_id!r}")
    return upload_id


def check_digest(digest: Digest) -> Digest:
    """Return ``digest`` if its parts are safe to use in a path, else raise ValueError.

    :class:`Digest` instances built by ``Digest.parse`` always pass; this guards against
    instances constructed directly with arbitrary strings.
    """
    length = _HEX_LENGTHS.get(digest.algorithm)
    if length is None or len(digest.hex) != length or _HEX.fullmatch(digest.hex) is None:
        raise ValueError(f"invalid digest {digest!s}")
    return digest


def parse_blob_name(algorithm: str, name: str) -> Digest | None:
    """The digest a stored blob's ``<alg>`` and ``<hex>`` names denote, or ``None``."""
    try:
        return check_digest(Digest(algorithm, name))
    except ValueError:
        return None
