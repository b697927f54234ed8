"""Turns credentials into an :class:`~core.access.Identity`.

HTTP Basic: robot secrets (``robot$...`` usernames), personal access tokens
(``mrp_...`` passwords), local passwords, an OIDC or trusted-issuer JWT as the password,
and Keycloak service accounts (client id and secret). Bearer: Keycloak access tokens
or trusted-issuer JWTs. Failures are throttled per username and client address, and
per username from all addresses at a higher limit (a password-spraying client cannot
lock out other users sharing its address). The counts are shared by all API processes
(``core.login_limit``); a successful login clears its username-and-address count.
Disabled, expired, revoked or deleted credentials stop working at once: the account,
robot or token record is read on every request. Only the slow hash's successes are
remembered for a short while (``core.passwords.RECENT``), keyed by the stored hash and
the secret, so a changed secret never matches a remembered one.
"""

from __future__ import annotations

import hmac
from datetime import datetime

from core.access import AuthMethod, Identity, IdentityKind
from core.identity_ports import IdentityStore, OidcProvider
from core.identity_records import OidcUser, PersonalTokenRecord, RobotRecord
from core.login_limit import LoginLimiter
from core.oidc import looks_like_jwt, unverified_issuer
from core.passwords import RECENT, hash_password
from core.ports import Clock
from core.services.auth import AuthService
from core.services.trusted_issuers import TrustedIssuers

ROBOT_PREFIX = "robot$"
TOKEN_PREFIX = "mrp_"  # noqa: S105 - the public prefix of personal access tokens
_DUMMY = hash_password("not a real secret")
REGISTRY_SCOPES = frozenset({"pull", "push", "delete"})
#: An account is throttled from every address after this many times the per-address limit.
ACCOUNT_FACTOR = 5


def split_personal_token(value: str) -> tuple[str, str] | None:
    """``mrp_<key>_<secret>`` -> ``(key, secret)``."""
    if not value.startswith(TOKEN_PREFIX):
        return None
    key, sep, secret = value[len(TOKEN_PREFIX) :].partition("_")
    return (key, secret) if sep and key and secret else None


class Authenticator:
    def __init__(
        self,
        local: AuthService,
        store: IdentityStore,
        issuers: TrustedIssuers,
        keycloak: OidcProvider | None,
        limiter: LoginLimiter,
        clock: Clock,
    ) -> None:
        self._local, self._store, self._issuers = local, store, issuers
        self.keycloak = keycloak
        self._limiter, self._clock = limiter, clock

    def basic(self, username: str, password: str, client: str) -> Identity | None:
        """The identity of Basic credentials, or ``None``; raises 429 when throttled."""
        pair, account = f"pair:{username}|{client}", f"user:{username}"
        self._limiter.check(pair, account)
        identity = self._basic(username, password)
        if identity is None:
            self._limiter.failed(pair)
            self._limiter.failed(account, factor=ACCOUNT_FACTOR)
        else:
            self._limiter.succeeded(pair)
        return identity

    def _basic(self, username: str, password: str) -> Identity | None:
        if username.startswith(ROBOT_PREFIX):
            return self.robot(username, password)
        token = split_personal_token(password)
        if token is not None:
            return self.personal_token(username, *token)
        if looks_like_jwt(password):
            return self.bearer(password)
        identity = self._local.authenticate(username, password)
        if identity is not None or self.keycloak is None:
            return identity
        account = self.keycloak.client_credentials(username, password)
        return None if account is None else _oidc_identity(account, AuthMethod.CLIENT_CREDENTIALS)

    def bearer(self, token: str) -> Identity | None:
        """A Keycloak access token or a trusted-issuer JWT; ``None`` when neither accepts it."""
        issuer = unverified_issuer(token)
        if issuer is None:
            return None
        if self.keycloak is not None and issuer == self.keycloak.issuer:
            user = self.keycloak.verify(token, check_active=True)
            return None if user is None else _oidc_identity(user, AuthMethod.OIDC)
        return self._issuers.authenticate(token)

    def robot(self, name: str, secret: str) -> Identity | None:
        robot = self._store.robot_by_name(name)
        valid = RECENT.verify(secret, robot.secret_hash if robot else _DUMMY)
        if robot is None or not valid or not self._usable_robot(robot):
            return None
        return Identity(
            subject=robot.name,
            method=AuthMethod.ROBOT_SECRET,
            kind=IdentityKind.ROBOT,
            permissions=tuple((p.repository, p.actions) for p in robot.permissions),
        )

    def _usable_robot(self, robot: RobotRecord) -> bool:
        return not robot.disabled and (
            robot.expires_at is None or robot.expires_at > self._clock.now()
        )

    def personal_token(self, username: str, key: str, secret: str) -> Identity | None:
        record = self._store.token_by_key(key)
        valid = RECENT.verify(secret, record.secret_hash if record else _DUMMY)
        if record is None or not valid or not self._usable_token(record, username):
            return None
        scopes = record.scopes & REGISTRY_SCOPES
        if "api" in record.scopes:
            scopes = scopes | {"api"}
        if record.owner_kind == "local":
            return self._local_owner(record.owner, scopes)
        if self.keycloak is None:
            return None
        user = self.keycloak.current_user(record.owner)
        if user is None:
            return None
        identity = _oidc_identity(user, AuthMethod.PERSONAL_TOKEN)
        return _with_scopes(identity, scopes)

    def _usable_token(self, record: PersonalTokenRecord, username: str) -> bool:
        owner_matches = hmac.compare_digest(record.owner.encode(), username.encode())
        expired = record.expires_at is not None and record.expires_at <= self._clock.now()
        return owner_matches and not record.revoked and not expired

    def _local_owner(self, username: str, scopes: frozenset[str]) -> Identity | None:
        user = self._local.user(username)
        if user is None or user.disabled:
            return None
        identity = Identity(
            subject=user.username, is_admin=user.is_admin, method=AuthMethod.PERSONAL_TOKEN
        )
        return _with_scopes(identity, scopes)

    def now(self) -> datetime:
        return self._clock.now()


def _oidc_identity(user: OidcUser, method: AuthMethod) -> Identity:
    return Identity(
        subject=user.username,
        is_admin=user.is_admin,
        method=method,
        kind=IdentityKind.OIDC_USER,
        groups=user.groups,
    )


def _with_scopes(identity: Identity, scopes: frozenset[str]) -> Identity:
    return Identity(
        subject=identity.subject,
        is_admin=identity.is_admin,
        method=identity.method,
        kind=identity.kind,
        groups=identity.groups,
        scopes=scopes,
    )


def may_use_api(identity: Identity) -> bool:
    """Personal access tokens reach the management API only with the ``api`` scope."""
    return identity.scopes is None or "api" in identity.scopes
