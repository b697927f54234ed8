"""Browser login to the management API: OIDC authorization code flow with PKCE.

``start`` records a one-time ``state`` (as its SHA-256) with its PKCE verifier (in the
database, so any API process can finish the login) and answers the provider's authorization URL.
``finish`` redeems the code once and issues a personal access token for the API.
A ``redirect_url`` must be a local path; anything else is refused.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import timedelta

from core.access import AuthMethod, Identity, IdentityKind
from core.errors import ForbiddenError, InvalidInputError
from core.identity_ports import IdentityStore, OidcProvider
from core.ports import Clock
from core.services.personal_tokens import NewToken, PersonalTokenService

LOGIN_TTL = timedelta(minutes=10)
_LOCAL_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*$")


def check_redirect(value: str | None) -> str | None:
    """A redirect target must be a local absolute path (no scheme, host or ``//``)."""
    if value is None or value == "":
        return None
    if not _LOCAL_PATH.match(value) or "%2f" in value.lower() or "%5c" in value.lower():
        raise InvalidInputError("redirect_url must be a local path")
    return value


def state_key(state: str) -> str:
    """What the store keeps of a login ``state``: its SHA-256 (hex).

    The lookup then compares digests an attacker cannot steer byte by byte, so response
    times say nothing about a pending state, and a database dump holds no usable state.
    """
    return hashlib.sha256(state.encode()).hexdigest()


class BrowserLogin:
    def __init__(
        self,
        keycloak: OidcProvider | None,
        store: IdentityStore,
        tokens: PersonalTokenService,
        clock: Clock,
        *,
        token_hours: int,
    ) -> None:
        self._keycloak, self._store, self._tokens, self._clock = keycloak, store, tokens, clock
        self._token_hours = token_hours

    def _provider(self) -> OidcProvider:
        if self._keycloak is None:
            raise ForbiddenError("no OIDC provider is configured")
        return self._keycloak

    def start(self, callback_url: str, redirect_url: str | None) -> str:
        check_redirect(redirect_url)
        provider = self._provider()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        self._store.add_login(state_key(state), verifier, nonce)
        return provider.authorization_url(callback_url, state, nonce, challenge)

    def finish(self, callback_url: str, code: str, state: str) -> NewToken:
        provider = self._provider()
        pending = self._store.take_login(state_key(state), self._clock.now() - LOGIN_TTL)
        if pending is None:
            raise ForbiddenError("unknown or expired login state")
        user = provider.exchange_code(code, callback_url, pending[0])
        if user is None:
            raise ForbiddenError("the provider did not confirm the login")
        identity = Identity(
            subject=user.username,
            is_admin=user.is_admin,
            method=AuthMethod.OIDC,
            kind=IdentityKind.OIDC_USER,
            groups=user.groups,
        )
        return self._tokens.create(
            identity,
            f"browser-{secrets.token_hex(4)}",
            frozenset({"pull", "push", "delete", "api"}),
            self._clock.now() + timedelta(hours=self._token_hours),
        )
