"""Registry endpoints: the remote registries proxy projects (and later replication) reach.

An endpoint is a URL, a kind of registry, credentials and TLS options. Its secret
(password, robot secret or token) is sealed at rest under the installation's master key
(``core.sealing``) with the endpoint's name as context, and it never leaves the process:
the management API shows only whether a secret is set, and no log line carries it.
URLs are checked against the outbound policy (``core.outbound``) when they are stored and
again on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol
from urllib.parse import urlsplit

from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.outbound import OutboundPolicy, OutboundRefusedError, parse_address, parse_destination
from core.sealing import SecretBox, named_context

#: Docker Hub's registry API host (image names without a namespace live in ``library/``).
DOCKER_HUB_HOST = "registry-1.docker.io"
#: Docker Hub's token realm host, the one realm host besides the registry's own it pins.
DOCKER_HUB_REALM_HOST = "auth.docker.io"
_NAME_MAX = 63


class EndpointType(StrEnum):
    """What a remote registry is (conventions differ, the protocol is the distribution API)."""

    MOORAGE = "moorage"
    DISTRIBUTION = "distribution"
    OCI = "oci"
    DOCKER_HUB = "docker-hub"


class CredentialKind(StrEnum):
    """How Moorage authenticates to the endpoint.

    ``basic`` and ``robot`` (a Moorage robot account) send a username and secret: as HTTP
    Basic where the registry challenges ``Basic``, and to the pinned token realm only
    where it challenges ``Bearer`` (the Docker token flow). ``token`` sends a static
    bearer token to the endpoint's host only. ``none`` pulls anonymously (still through
    the token flow where the registry wants it).
    """

    NONE = "none"
    BASIC = "basic"
    ROBOT = "robot"
    TOKEN = "token"  # noqa: S105 - a credential kind, not a credential


@dataclass(frozen=True, slots=True)
class Credentials:
    """Opened credentials of an endpoint (in memory only, never logged)."""

    kind: CredentialKind
    username: str = ""
    secret: str = ""

    def __repr__(self) -> str:
        return f"Credentials(kind={self.kind.value!r}, username={self.username!r}, secret=***)"


ANONYMOUS = Credentials(CredentialKind.NONE)


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """A stored endpoint; ``sealed_secret`` stays sealed until a call needs it."""

    id: int
    name: str
    url: str
    type: EndpointType
    credential: CredentialKind
    username: str
    sealed_secret: str | None
    #: PEM certificates trusted for this endpoint in addition to (not instead of) none:
    #: when set, only these CAs verify the endpoint's certificate.
    ca_bundle: str | None
    #: Skip TLS verification (loopback test registries only).
    insecure: bool
    #: Token realm hosts allowed besides the endpoint's own host (admin setting).
    realm_hosts: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def unsaved(
        cls, name: str, url: str, type_: EndpointType, *, insecure: bool = False
    ) -> EndpointRecord:
        """An endpoint that is never stored (no credentials, no extra realm hosts).

        For calls whose destination comes from elsewhere than ``/api/v1/registries``:
        this installation's own ``/v2``, a scan request's registry, a benchmark.
        """
        now = datetime.now(UTC)
        return cls(
            id=0,
            name=name,
            url=url,
            type=type_,
            credential=CredentialKind.NONE,
            username="",
            sealed_secret=None,
            ca_bundle=None,
            insecure=insecure,
            realm_hosts=(),
            created_at=now,
            updated_at=now,
        )

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def has_secret(self) -> bool:
        return self.sealed_secret is not None


@dataclass(frozen=True, slots=True)
class EndpointInput:
    """What an administrator sets on an endpoint (``secret`` in clear, sealed on store)."""

    name: str
    url: str
    type: EndpointType = EndpointType.OCI
    credential: CredentialKind = CredentialKind.NONE
    username: str = ""
    secret: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False
    realm_hosts: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"EndpointInput(name={self.name!r}, url={self.url!r}, secret=***)"


class EndpointStore(Protocol):
    """Stored endpoints (``storage.db.endpoints``); names are unique."""

    def add(self, record: EndpointRecord) -> EndpointRecord | None:
        """Insert (``id`` ignored); ``None`` if the name is taken."""

    def get(self, name: str) -> EndpointRecord | None: ...

    def by_id(self, endpoint_id: int) -> EndpointRecord | None: ...

    def list(self) -> list[EndpointRecord]: ...

    def replace(self, record: EndpointRecord) -> bool:
        """Overwrite the endpoint with ``record.id``; ``False`` if it is gone."""

    def delete(self, name: str) -> bool: ...


def seal_context(name: str) -> str:
    """The sealing context of an endpoint's secret (a copy into another row does not open)."""
    return named_context("registry-endpoint", name)


def normalized_url(url: str, policy: OutboundPolicy) -> str:
    """``url`` without trailing slash, checked against the outbound policy (field ``url``)."""
    text = url.strip().rstrip("/")
    try:
        destination = parse_destination(text, policy)
    except OutboundRefusedError as exc:
        raise InvalidInputError(str(exc), field="url") from exc
    if destination.parts.path not in ("", "/") or destination.parts.query:
        raise InvalidInputError("url must be the registry's base URL (no path)", field="url")
    return text


def _check(data: EndpointInput) -> None:
    if not data.name or len(data.name) > _NAME_MAX or not data.name.replace("-", "").isalnum():
        raise InvalidInputError("name: 1-63 letters, digits and dashes", field="name")
    scheme = data.credential  # the kind of credential, not a secret
    needs_user = scheme in (CredentialKind.BASIC, CredentialKind.ROBOT)
    if needs_user and not data.username:
        raise InvalidInputError("username is required for these credentials", field="username")
    if scheme is CredentialKind.NONE and (data.username or data.secret):
        raise InvalidInputError("credential 'none' takes no username or secret", field="credential")
    if data.insecure and not _is_loopback(data.url):
        raise InvalidInputError("insecure is only allowed for loopback URLs", field="insecure")
    if data.insecure and data.ca_bundle:
        raise InvalidInputError("insecure and ca_bundle exclude each other", field="insecure")
    if data.ca_bundle is not None and "BEGIN CERTIFICATE" not in data.ca_bundle:
        raise InvalidInputError("ca_bundle must hold PEM certificates", field="ca_bundle")


def _is_loopback(url: str) -> bool:
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return False
    address = parse_address(host)
    return host == "localhost" or (address is not None and address.is_loopback)


class EndpointService:
    """Create, read, change and delete endpoints; open their credentials for a call.

    Consistency: a secret is sealed before it is stored and opened only by
    :meth:`credentials`; records returned to callers carry it sealed.
    """

    def __init__(
        self, store: EndpointStore, box: Callable[[], SecretBox], policy: OutboundPolicy
    ) -> None:
        self._store = store
        self._box = box
        self._policy = policy

    @property
    def policy(self) -> OutboundPolicy:
        return self._policy

    def create(self, data: EndpointInput) -> EndpointRecord:
        _check(data)
        if data.credential is not CredentialKind.NONE and not data.secret:
            raise InvalidInputError("secret is required for these credentials", field="secret")
        now = datetime.now(UTC)
        record = EndpointRecord(
            id=0,
            name=data.name,
            url=normalized_url(data.url, self._policy),
            type=data.type,
            credential=data.credential,
            username=data.username,
            sealed_secret=self._seal(data.name, data.secret),
            ca_bundle=data.ca_bundle,
            insecure=data.insecure,
            realm_hosts=tuple(h.lower() for h in data.realm_hosts),
            created_at=now,
            updated_at=now,
        )
        stored = self._store.add(record)
        if stored is None:
            raise ConflictError(f"registry endpoint {data.name!r} already exists")
        return stored

    def update(self, name: str, data: EndpointInput) -> EndpointRecord:
        """Replace the endpoint's settings; a ``None`` secret keeps the stored one."""
        current = self.get(name)
        _check(replace(data, name=name))
        sealed = current.sealed_secret if data.secret is None else self._seal(name, data.secret)
        if data.credential is CredentialKind.NONE:
            sealed = None
        elif sealed is None:
            raise InvalidInputError("secret is required for these credentials", field="secret")
        record = replace(
            current,
            url=normalized_url(data.url, self._policy),
            type=data.type,
            credential=data.credential,
            username=data.username,
            sealed_secret=sealed,
            ca_bundle=data.ca_bundle,
            insecure=data.insecure,
            realm_hosts=tuple(h.lower() for h in data.realm_hosts),
            updated_at=datetime.now(UTC),
        )
        if not self._store.replace(record):
            raise NotFoundError(f"registry endpoint {name!r} not found")
        return record

    def get(self, name: str) -> EndpointRecord:
        record = self._store.get(name)
        if record is None:
            raise NotFoundError(f"registry endpoint {name!r} not found")
        return record

    def find(self, name: str) -> EndpointRecord | None:
        return self._store.get(name)

    def list(self) -> list[EndpointRecord]:
        return self._store.list()

    def delete(self, name: str) -> None:
        if not self._store.delete(name):
            raise NotFoundError(f"registry endpoint {name!r} not found")

    def credentials(self, record: EndpointRecord) -> Credentials:
        """The endpoint's opened credentials (for one outbound call; never store them)."""
        if record.credential is CredentialKind.NONE or record.sealed_secret is None:
            return ANONYMOUS
        secret = self._box().open(record.sealed_secret, seal_context(record.name)).decode()
        return Credentials(record.credential, record.username, secret)

    def _seal(self, name: str, secret: str | None) -> str | None:
        if not secret:
            return None
        return self._box().seal(secret.encode(), seal_context(name))
