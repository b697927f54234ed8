"""Trusted issuers: workload JWTs (e.g. Kubernetes service-account tokens) as credentials.

An administrator registers an issuer with its JWKS (or discovery) URL, the audience
Moorage requires, which claim names the workload, a glob the workload's name must
match, and the registry permissions such workloads get. A token from that issuer then
authenticates as ``<issuer>#<subject>`` with exactly those permissions.
"""

from __future__ import annotations

import fnmatch
import threading

from core.access import AuthMethod, Identity, IdentityKind
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.identity_ports import IdentityStore, SigningKeysSource
from core.identity_records import RepositoryPermission, TrustedIssuerRecord
from core.oidc import ExternalTokenError, JwtVerifier, unverified_issuer
from core.paging import window


def _issuer_id(issuer: TrustedIssuerRecord) -> int:
    return issuer.id


class TrustedIssuers:
    def __init__(self, store: IdentityStore, keys: SigningKeysSource) -> None:
        self._store, self._keys = store, keys
        self._verifiers: dict[tuple[int, str], JwtVerifier] = {}
        self._lock = threading.Lock()

    def register(
        self,
        issuer: str,
        *,
        jwks_url: str | None,
        discovery_url: str | None,
        audience: str,
        subject_claim: str,
        subject_pattern: str,
        permissions: tuple[RepositoryPermission, ...],
    ) -> TrustedIssuerRecord:
        if not jwks_url and not discovery_url:
            raise InvalidInputError("jwks_url or discovery_url is required")
        record = self._store.add_issuer(
            issuer, jwks_url, discovery_url, audience, subject_claim, subject_pattern, permissions
        )
        if record is None:
            raise ConflictError(f"issuer {issuer!r} is already trusted")
        return record

    def list(self, after: int | None = None, limit: int | None = None) -> list[TrustedIssuerRecord]:
        """Trusted issuers by id: at most ``limit`` after id ``after`` (keyset)."""
        return window(self._store.issuers(), _issuer_id, after, limit)

    def remove(self, issuer_id: int) -> None:
        if not self._store.delete_issuer(issuer_id):
            raise NotFoundError(f"trusted issuer {issuer_id} not found")

    def _verifier(self, record: TrustedIssuerRecord) -> JwtVerifier:
        key = (record.id, f"{record.jwks_url}|{record.discovery_url}|{record.audience}")
        with self._lock:
            verifier = self._verifiers.get(key)
            if verifier is None:
                keys = self._keys(
                    record.issuer, jwks_url=record.jwks_url, discovery_url=record.discovery_url
                )
                verifier = JwtVerifier(record.issuer, record.audience, keys)
                self._verifiers[key] = verifier
            return verifier

    def authenticate(self, token: str) -> Identity | None:
        """The workload identity of ``token``, or ``None`` if no trusted issuer vouches for it."""
        issuer = unverified_issuer(token)
        record = self._store.issuer_by_iss(issuer) if issuer else None
        if record is None:
            return None
        try:
            claims = self._verifier(record).verify(token)
        except ExternalTokenError:
            return None
        subject = claims.get(record.subject_claim)
        if not isinstance(subject, str) or not fnmatch.fnmatchcase(subject, record.subject_pattern):
            return None
        return Identity(
            subject=f"{record.issuer}#{subject}",
            method=AuthMethod.TRUSTED_ISSUER,
            kind=IdentityKind.ISSUER,
            permissions=tuple((p.repository, p.actions) for p in record.permissions),
        )
