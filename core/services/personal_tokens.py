"""Personal access tokens: named, scoped, expiring, revocable; shown once, stored hashed.

The token text is ``mrp_<key>_<secret>``: the key finds the row, the secret is checked
against its scrypt hash. A token works as the password of ``docker login`` with its
owner's username. Tokens of OIDC users do not depend on any IdP refresh token: at each
use the owner's live state (enabled, groups) is read from the provider instead.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.access import Identity, IdentityKind
from core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from core.identity_ports import IdentityStore
from core.identity_records import PersonalTokenRecord
from core.paging import window
from core.passwords import hash_password
from core.ports import Clock
from core.services.authenticator import REGISTRY_SCOPES, TOKEN_PREFIX

TOKEN_SCOPES = REGISTRY_SCOPES | {"api"}
MAX_LIFETIME = timedelta(days=366)
_NAME_MAX = 128


@dataclass(frozen=True)
class NewToken:
    record: PersonalTokenRecord
    token: str


def _token_id(token: PersonalTokenRecord) -> int:
    return token.id


class PersonalTokenService:
    def __init__(self, store: IdentityStore, clock: Clock) -> None:
        self._store, self._clock = store, clock

    @staticmethod
    def _owner(caller: Identity) -> str:
        if caller.kind is IdentityKind.USER:
            return "local"
        if caller.kind is IdentityKind.OIDC_USER:
            return "oidc"
        raise ForbiddenError("only users have personal access tokens")

    def create(
        self, caller: Identity, name: str, scopes: frozenset[str], expires_at: datetime | None
    ) -> NewToken:
        owner_kind = self._owner(caller)
        if not name or len(name) > _NAME_MAX or not scopes or not scopes <= TOKEN_SCOPES:
            raise InvalidInputError("a token has a name and scopes among pull, push, delete, api")
        if caller.scopes is not None and not scopes <= caller.scopes:
            raise ForbiddenError("a token cannot get more scopes than the one creating it")
        now = self._clock.now()
        expires_at = expires_at or now + timedelta(days=30)
        if expires_at <= now or expires_at > now + MAX_LIFETIME:
            raise InvalidInputError("expires_at must be in the future, at most a year away")
        key, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        record = self._store.add_token(
            key, caller.subject, owner_kind, name, hash_password(secret), scopes, expires_at
        )
        if record is None:
            raise ConflictError(f"a token named {name!r} exists")
        return NewToken(record, f"{TOKEN_PREFIX}{key}_{secret}")

    def list(
        self, caller: Identity, after: int | None = None, limit: int | None = None
    ) -> list[PersonalTokenRecord]:
        """The caller's tokens by id: at most ``limit`` after id ``after`` (keyset)."""
        self._owner(caller)
        return window(self._store.tokens(caller.subject), _token_id, after, limit)

    def revoke(self, caller: Identity, token_id: int) -> None:
        self._owner(caller)
        if not self._store.revoke_token(caller.subject, token_id):
            raise NotFoundError(f"token {token_id} not found")
