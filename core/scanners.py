"""Scanner registrations (Harbor's model): external scanners this installation's scans use.

A **registration** names a scanner that speaks the Pluggable Scanner API (``core.scanner_api``):
its base URL (the part before ``/api/v1``), how Moorage authenticates to it (``auth``:
``none``, ``Basic``, ``Bearer`` or ``X-ScannerAdapter-API-Key``, with an access
credential), whether TLS verification is skipped, whether it is ``disabled``, and whether
it is the system **default** (at most one is). The access credential is sealed at rest
under the master key by the rule every named object's secret follows
(``core.sealing.NamedSecrets``); it is write-only: no answer, record ``repr`` or log line
carries it. URLs are checked against the outbound policy when written and at every call.

A **project** may select a registration (stored as the project's ``scanner`` policy
document); otherwise the default is used. :meth:`ScannerService.resolve` is the choice
the scan workflow's delegation makes: the project's selected registration, else the
default one, else nothing (the caller then falls back to the ``scanner_api.delegate``
setting, then to the built-in analyzer). A disabled registration is never chosen.

The ping asks the adapter's ``GET /api/v1/metadata`` (a :class:`ScannerProbe`) and
checks the answer with :func:`check_metadata`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.outbound import OutboundPolicy, OutboundRefusedError, parse_destination
from core.preheat import check_name
from core.scanner_api import ExternalScannerError
from core.scanner_api_settings import DelegateSettings
from core.sealing import NamedSecrets, SecretBox

#: Name of the scanner that the ``scanner_api.delegate`` setting configures.
SETTINGS_SCANNER: Final = "scanner_api.delegate"
#: The project policy document that holds a project's selected registration.
SELECTION: Final = "scanner"
#: Sealing kind of a registration's access credential (``core.sealing.named_context``).
SEAL_KIND: Final = "scanner-registration"
API_KEY_HEADER: Final = "X-ScannerAdapter-API-Key"
_DESCRIPTION_MAX = 1024


class ScannerAuth(StrEnum):
    """How Moorage authenticates to the scanner (Harbor's ``auth`` values)."""

    NONE = "none"
    #: ``Authorization: Basic``; the access credential is ``username:password``.
    BASIC = "Basic"
    #: ``Authorization: Bearer <access credential>``.
    BEARER = "Bearer"
    #: ``X-ScannerAdapter-API-Key: <access credential>``.
    API_KEY = API_KEY_HEADER


@dataclass(frozen=True, slots=True)
class Scanner:
    """A stored registration; ``sealed_credential`` stays sealed until a call needs it."""

    id: int
    name: str
    description: str
    url: str
    auth: ScannerAuth
    sealed_credential: str | None
    skip_tls_verify: bool
    disabled: bool
    is_default: bool
    created_at: datetime
    updated_at: datetime

    @property
    def has_credential(self) -> bool:
        return self.sealed_credential is not None

    def __repr__(self) -> str:
        return f"Scanner(name={self.name!r}, url={self.url!r}, auth={self.auth.value!r})"


@dataclass(frozen=True, slots=True)
class ScannerInput:
    """A registration as an administrator writes it (``credential`` ``None`` keeps the stored)."""

    name: str
    url: str
    description: str = ""
    auth: ScannerAuth = ScannerAuth.NONE
    credential: str | None = None
    skip_tls_verify: bool = False
    disabled: bool = False
    is_default: bool = False

    def __repr__(self) -> str:
        return f"ScannerInput(name={self.name!r}, url={self.url!r}, credential=***)"


@dataclass(frozen=True, slots=True)
class ScannerCall:
    """What one call to a registered scanner needs (opened credential: never store it)."""

    name: str
    url: str
    headers: Mapping[str, str]
    skip_tls_verify: bool

    def __repr__(self) -> str:
        return f"ScannerCall(name={self.name!r}, url={self.url!r}, headers=***)"


@dataclass(frozen=True, slots=True)
class ScannerMetadata:
    """What an adapter's ``GET /api/v1/metadata`` says of itself."""

    name: str
    vendor: str
    version: str
    capabilities: tuple[dict[str, Any], ...]
    properties: dict[str, str]


class ScannerStore(Protocol):
    """Stored registrations (``storage.db.scanners``); names are unique, one default.

    ``add`` and ``replace`` of a record with ``is_default`` clear every other's flag in
    the same transaction.
    """

    def add(self, record: Scanner) -> Scanner | None:
        """Insert (``id`` ignored); ``None`` if the name is taken."""

    def get(self, name: str) -> Scanner | None: ...

    def list(self) -> list[Scanner]: ...

    def replace(self, record: Scanner) -> bool:
        """Overwrite the registration with ``record.id``; ``False`` if it is gone."""

    def delete(self, name: str) -> bool: ...

    def set_default(self, name: str | None) -> bool:
        """Make ``name`` the only default (``None``: none is); ``False`` if it is gone."""


class ProjectDocuments(Protocol):
    """Projects' policy documents (``core.services.policies.PolicyService``)."""

    def get(self, project: str, kind: str) -> str | None: ...

    def put(self, project: str, kind: str, body: str) -> None: ...

    def projects_with(self, kind: str) -> dict[str, str]:
        """Each project that holds a document of ``kind``, with the document."""


class ScannerProbe(Protocol):
    """Asks an adapter for its metadata (``ExternalScannerError`` when it cannot)."""

    async def metadata(self, call: ScannerCall) -> dict[str, Any]: ...


def auth_headers(auth: ScannerAuth, credential: str | None) -> dict[str, str]:
    """The headers that authenticate a call with ``credential`` (opened)."""
    if auth is ScannerAuth.NONE or not credential:
        return {}
    if auth is ScannerAuth.BASIC:
        return {"Authorization": f"Basic {base64.b64encode(credential.encode()).decode()}"}
    if auth is ScannerAuth.BEARER:
        return {"Authorization": f"Bearer {credential}"}
    return {API_KEY_HEADER: credential}


def selected_name(body: str | None) -> str | None:
    """The registration a project's ``scanner`` document selects (``None``: the default)."""
    if not body:
        return None
    found = json.loads(body).get("scanner")
    return found if isinstance(found, str) and found else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def check_metadata(document: Mapping[str, Any]) -> ScannerMetadata:
    """The metadata of an adapter's answer (``ExternalScannerError`` when it is not one)."""
    scanner = document.get("scanner")
    capabilities = document.get("capabilities")
    if not isinstance(scanner, Mapping) or not _text(scanner.get("name")):
        raise ExternalScannerError("the adapter's metadata names no scanner")
    if not isinstance(capabilities, list) or not capabilities:
        raise ExternalScannerError("the adapter's metadata lists no capabilities")
    properties = document.get("properties")
    return ScannerMetadata(
        name=_text(scanner.get("name")),
        vendor=_text(scanner.get("vendor")),
        version=_text(scanner.get("version")),
        capabilities=tuple(dict(c) for c in capabilities if isinstance(c, Mapping)),
        properties={
            str(k): str(v) for k, v in (properties or {}).items() if isinstance(v, str | int)
        }
        if isinstance(properties, Mapping)
        else {},
    )


class ScannerService:
    """Create, read, change and delete registrations; choose the one a project's scans use.

    Consistency: each method is one or two short transactions of the store; a credential
    is sealed before it is stored and opened only by :meth:`call_of`.
    """

    def __init__(
        self,
        store: ScannerStore,
        box: Callable[[], SecretBox],
        outbound: OutboundPolicy,
        projects: ProjectDocuments,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store, self._secrets = store, NamedSecrets(box, SEAL_KIND)
        self._outbound, self._projects, self._now = outbound, projects, clock

    def _url(self, url: str) -> str:
        text = url.strip().rstrip("/")
        try:
            destination = parse_destination(text, self._outbound)
        except OutboundRefusedError as exc:
            raise InvalidInputError(str(exc), field="url") from exc
        if destination.parts.query or destination.parts.fragment:
            raise InvalidInputError("url is the adapter's base URL (no query)", field="url")
        if text.endswith("/api/v1"):
            raise InvalidInputError("url is the part before /api/v1", field="url")
        return text

    def _sealed(self, data: ScannerInput, current: str | None) -> str | None:
        if data.auth is ScannerAuth.NONE:
            if data.credential:
                raise InvalidInputError(
                    "auth 'none' takes no access_credential", field="access_credential"
                )
            return None
        if data.credential is None and current is not None:
            return current
        if not data.credential:
            raise InvalidInputError(
                f"auth {data.auth.value!r} needs an access_credential", field="access_credential"
            )
        if data.auth is ScannerAuth.BASIC and ":" not in data.credential:
            raise InvalidInputError(
                "auth 'Basic' takes the access_credential 'username:password'",
                field="access_credential",
            )
        return self._secrets.seal(data.name, data.credential)

    @staticmethod
    def _check(data: ScannerInput) -> None:
        check_name(data.name)
        if len(data.description) > _DESCRIPTION_MAX:
            raise InvalidInputError("description: at most 1024 characters", field="description")

    def create(self, data: ScannerInput) -> Scanner:
        self._check(data)
        now = self._now()
        record = Scanner(
            id=0,
            name=data.name,
            description=data.description,
            url=self._url(data.url),
            auth=data.auth,
            sealed_credential=self._sealed(data, None),
            skip_tls_verify=data.skip_tls_verify,
            disabled=data.disabled,
            is_default=data.is_default,
            created_at=now,
            updated_at=now,
        )
        stored = self._store.add(record)
        if stored is None:
            raise ConflictError(f"scanner {data.name!r} already exists")
        return stored

    def update(self, name: str, data: ScannerInput) -> Scanner:
        """Replace a registration's settings (its name cannot change)."""
        current = self.get(name)
        if data.name != name:
            raise InvalidInputError("a scanner's name cannot change", field="name")
        self._check(data)
        record = replace(
            current,
            description=data.description,
            url=self._url(data.url),
            auth=data.auth,
            sealed_credential=self._sealed(data, current.sealed_credential),
            skip_tls_verify=data.skip_tls_verify,
            disabled=data.disabled,
            is_default=data.is_default,
            updated_at=self._now(),
        )
        if not self._store.replace(record):
            raise NotFoundError(f"scanner {name!r} not found")
        return record

    def get(self, name: str) -> Scanner:
        found = self._store.get(name)
        if found is None:
            raise NotFoundError(f"scanner {name!r} not found")
        return found

    def registrations(self) -> list[Scanner]:
        """Every registration, by name."""
        return self._store.list()

    def users(self, name: str) -> list[str]:
        """The projects that select the registration ``name``."""
        selections = self._projects.projects_with(SELECTION)
        return sorted(p for p, body in selections.items() if selected_name(body) == name)

    def delete(self, name: str) -> None:
        """Remove a registration no project selects (the default may go: then none is)."""
        self.get(name)
        users = self.users(name)
        if users:
            raise ConflictError(f"scanner {name!r} is selected by projects {users}")
        if not self._store.delete(name):
            raise NotFoundError(f"scanner {name!r} not found")

    def set_default(self, name: str | None) -> None:
        """Make ``name`` the system default (``None``: no registration is)."""
        if name is not None:
            self.get(name)
        if not self._store.set_default(name):
            raise NotFoundError(f"scanner {name!r} not found")

    # -- a project's selection ------------------------------------------------------------

    def selection(self, project: str) -> str | None:
        """The registration ``project`` selects (``None``: it uses the default)."""
        return selected_name(self._projects.get(project, SELECTION))

    def select(self, project: str, name: str | None) -> None:
        """Select the registration ``name`` for ``project``'s scans (``None``: the default)."""
        if name is not None and self._store.get(name) is None:
            raise InvalidInputError(f"no scanner {name!r}", field="scanner")
        self._projects.put(project, SELECTION, json.dumps({"scanner": name}))

    # -- use -------------------------------------------------------------------------------

    def call_of(self, scanner: Scanner) -> ScannerCall:
        """How to call ``scanner`` (its credential opened; never store or log the result)."""
        self._url(scanner.url)
        credential = (
            None
            if scanner.sealed_credential is None
            else self._secrets.open(scanner.name, scanner.sealed_credential)
        )
        return ScannerCall(
            scanner.name,
            scanner.url,
            auth_headers(scanner.auth, credential),
            scanner.skip_tls_verify,
        )

    def chosen(self, project: str) -> Scanner | None:
        """The enabled registration ``project``'s scans go to: its selection, else the default."""
        try:
            name = selected_name(self._projects.get(project, SELECTION))
        except NotFoundError:
            name = None  # a project deleted meanwhile: the default, as for any other
        selected = self._store.get(name) if name is not None else None
        if selected is not None and not selected.disabled:
            return selected
        return next((s for s in self._store.list() if s.is_default and not s.disabled), None)

    def resolve(self, project: str) -> ScannerCall | None:
        """How to call the registration ``project``'s scans go to (``None``: none does)."""
        found = self.chosen(project)
        return None if found is None else self.call_of(found)


def delegate_of(
    project: str, registered: Callable[[str], ScannerCall | None], settings: DelegateSettings
) -> ScannerCall | None:
    """The external scanner ``project``'s scans go to; ``None``: the built-in analyzer.

    A registration (``registered``: :meth:`ScannerService.resolve`) takes precedence over
    the ``scanner_api.delegate`` setting, which is used only when no enabled registration
    is selected by the project or is the default.
    """
    found = registered(project)
    if found is not None:
        return found
    if settings.url is None or not settings.selects(project):
        return None
    token = settings.token.get_secret_value() if settings.token is not None else None
    return ScannerCall(
        SETTINGS_SCANNER,
        settings.url,
        auth_headers(ScannerAuth.BEARER, token),
        skip_tls_verify=False,
    )
