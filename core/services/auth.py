"""Authentication of callers and issuing of registry tokens."""

from __future__ import annotations

from collections.abc import Callable

from core.access import AuthMethod, Identity, RightsLookup, Scope, describe, grant
from core.passwords import RECENT, generate_password, hash_password, needs_rehash, verify_password
from core.ports import Clock, Metadata
from core.records import UserRecord
from core.services.projects import ProjectService
from core.settings import AuthSettings
from core.tokens import IssuedToken, SigningKey, TokenService


class AuthService:
    """Checks credentials and issues tokens whose access is the grantable part of a request."""

    def __init__(
        self,
        metadata: Metadata,
        projects: ProjectService,
        tokens: TokenService,
        settings: AuthSettings,
        clock: Clock,
    ) -> None:
        self._metadata = metadata
        self._projects = projects
        self.tokens = tokens
        self._settings = settings
        self._clock = clock

    def authenticate(self, username: str, password: str) -> Identity | None:
        """The identity for a username and password, or ``None``.

        The password is always hashed, so a wrong username costs as much as a wrong
        password (no user enumeration by timing). After a successful check a stored hash
        in an older format or with older parameters (``core.passwords.needs_rehash``) is
        replaced by a current one, unless the password changed meanwhile.
        """
        with self._metadata.read() as session:
            user = session.users.get(username)
        stored = user.password_hash if user is not None else _DUMMY_HASH
        valid = RECENT.verify(password, stored)
        if user is None or not valid or user.disabled:
            return None
        if needs_rehash(stored):
            self._rehash(user.username, stored, password)
        return Identity(subject=user.username, is_admin=user.is_admin, method=AuthMethod.PASSWORD)

    def _rehash(self, username: str, stored: str, password: str) -> None:
        """Replace ``stored`` by a current hash of ``password`` (compare-and-set)."""
        current = hash_password(password)
        with self._metadata.write() as session:
            session.users.replace_password_hash(username, stored, current)
            session.commit()

    def user(self, username: str) -> UserRecord | None:
        """The local account ``username`` (``None`` if there is none)."""
        with self._metadata.read() as session:
            return session.users.get(username)

    def issue(
        self, identity: Identity, requested: list[Scope], rights: RightsLookup | None = None
    ) -> IssuedToken:
        """A registry token holding the part of ``requested`` that ``identity`` may hold.

        ``rights`` looks up the caller's roles and explicit permissions in a project.
        """
        granted = grant(
            identity,
            requested,
            self._projects.find,
            create_on_push=self._settings.create_project_on_push,
            rights=rights,
        )
        return self.tokens.issue(
            identity.subject, granted, identity.is_admin, self._clock.now(), describe(identity)
        )


#: The ``kid`` of an installation's first signing key.
INITIAL_KID = "initial"

_DUMMY_HASH = hash_password("not a real password")


def bootstrap_admin(metadata: Metadata, settings: AuthSettings, password: str) -> None:
    """Create the local admin account, or reset its password to ``password``."""
    with metadata.write() as session:
        user = session.users.get(settings.admin_username)
        stored = None if user is None else user.password_hash
        if stored is None or needs_rehash(stored) or not verify_password(password, stored):
            session.users.upsert(settings.admin_username, hash_password(password), is_admin=True)
        session.commit()


def ensure_admin(
    metadata: Metadata, settings: AuthSettings, generate: Callable[[], str] = generate_password
) -> str | None:
    """Make sure the local admin account exists; returns a password made for it, if any.

    With ``settings.admin_password`` the account is created or reset to it. Without one
    a missing account is created with a password from ``generate``, which is returned
    so the caller can show it once; an existing account is left alone (``None``).
    Callers run it once per installation start under the migration lock, so processes
    starting together never create the account twice.
    """
    if settings.admin_password is not None:
        bootstrap_admin(metadata, settings, settings.admin_password.get_secret_value())
        return None
    with metadata.read() as session:
        if session.users.get(settings.admin_username) is not None:
            return None
    generated = generate()
    bootstrap_admin(metadata, settings, generated)
    return generated


def ensure_signing_key(metadata: Metadata) -> None:
    """Add the installation's first signing key if it has none (idempotent).

    The first key has a fixed ``kid``: of processes that add it together only the
    first insert lands.
    """
    with metadata.read() as session:
        if session.signing_keys.all():
            return
    key = SigningKey.generate()
    with metadata.write() as session:
        session.signing_keys.add(INITIAL_KID, key.to_pem())
        session.commit()


def load_signing_keys(metadata: Metadata) -> list[SigningKey]:
    """The installation's signing keys, oldest first (see :func:`ensure_signing_key`)."""
    with metadata.read() as session:
        stored = session.signing_keys.all()
    return [SigningKey.from_pem(kid, pem, created_at) for kid, pem, created_at in stored]
