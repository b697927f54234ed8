"""Administration as code: scanner registrations and a project's scanner (``core.scanners``).

- ``Scanner``: a registration of this installation (system administrators), keyed by its
  name; the spec holds the fields ``/api/v1/scanners`` takes. Its access credential is
  write-only, given by reference (``env:NAME``, ``file:/path``) or as ``stored`` (the
  value the registry holds, what ``export`` writes), compared and sent as a registry
  endpoint's secret is (``core.ascode_outbound``): on creation, when one is added, or
  with ``access_credential_rotate: true``. ``default: true`` makes it the system default
  (at most one document of a file may say so).
- ``ProjectScanner``: the registration a project's scans use (one per project; absent, or
  ``scanner: null``, meaning the system default). It names a ``Scanner`` of the file or
  of the registry (registrations are created before projects and deleted after them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.ascode_base import DocumentBase, InProject, Strict
from core.ascode_outbound import StoredOrRef, refuse_bad_rotate, secret_state
from core.errors import InvalidInputError
from core.preheat import NAME_PATTERN, check_name
from core.scanners import ScannerAuth


def _registry_name(name: str) -> str:
    try:
        return check_name(name)
    except InvalidInputError as exc:
        raise ValueError(str(exc).removeprefix("name: ")) from exc


class ScannerMeta(Strict):
    name: str = Field(
        description="1-63 lower-case letters, digits, '.', '_' and '-'.",
        json_schema_extra={"pattern": NAME_PATTERN},
    )

    _name = field_validator("name")(_registry_name)


class ScannerSpec(Strict):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="The adapter's base URL, before /api/v1 (checked by the outbound policy).",
    )
    description: str = Field(default="", max_length=1024)
    auth: ScannerAuth = ScannerAuth.NONE
    access_credential: StoredOrRef | None = Field(
        default=None,
        description="Basic 'username:password', a bearer token or an API key, by reference; "
        "'stored' keeps the registry's; never exported.",
    )
    access_credential_rotate: bool = Field(
        default=False, description="Send the referenced access_credential again on every apply."
    )
    skip_cert_verify: bool = False
    disabled: bool = Field(default=False, description="A disabled scanner is never used.")
    default: bool = Field(default=False, description="The system default scanner.")

    @model_validator(mode="after")
    def _consistent(self) -> ScannerSpec:
        refuse_bad_rotate(
            self.access_credential, self.access_credential_rotate, "access_credential"
        )
        if self.auth is ScannerAuth.NONE and self.access_credential is not None:
            raise ValueError("auth 'none' takes no access_credential")
        if self.auth is not ScannerAuth.NONE and self.access_credential is None:
            raise ValueError(f"auth {self.auth.value!r} needs an access_credential")
        return self


class ScannerDoc(DocumentBase):
    """A scanner registration; deleted only when no project selects it."""

    kind: Literal["Scanner"]
    metadata: ScannerMeta
    spec: ScannerSpec

    def key(self) -> str:
        return self.metadata.name

    def canonical_spec(self) -> dict[str, Any]:
        spec = self.spec.model_dump(mode="json", exclude={"access_credential_rotate"})
        spec["url"] = self.spec.url.strip().rstrip("/")  # as the registry stores it
        spec["access_credential"] = secret_state(
            self.spec.access_credential, self.spec.access_credential_rotate
        )
        return spec


class ProjectScannerSpec(Strict):
    scanner: str | None = Field(
        default=None, max_length=63, description="The Scanner's name; null: the system default."
    )


class ProjectScannerDoc(DocumentBase):
    """The scanner a project's scans use; without the document (and ``--prune``) the default."""

    kind: Literal["ProjectScanner"]
    metadata: InProject
    spec: ProjectScannerSpec = ProjectScannerSpec()

    def key(self) -> str:
        return self.metadata.project

    def project_ref(self) -> str | None:
        return self.metadata.project


def scanner_problems(docs: list[tuple[str, Any]]) -> list[str]:
    """More than one ``Scanner`` of a file that says ``default: true``."""
    defaults = [
        (where, doc) for where, doc in docs if isinstance(doc, ScannerDoc) and doc.spec.default
    ]
    return [
        f"{where}: spec.default: scanner {doc.key()!r} is a second default (the first is "
        f"{defaults[0][1].key()!r}, in {defaults[0][0]}): at most one scanner is the default"
        for where, doc in defaults[1:]
    ]
