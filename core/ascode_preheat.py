"""Administration as code: the P2P preheat kinds (``core.preheat``).

- ``P2PInstance``: a provider instance of this installation (system administrators),
  keyed by its name; the spec holds the fields ``/api/v1/p2p/instances`` takes (with
  Harbor's ``default`` and ``insecure``; ``auth_mode`` in Harbor's spelling too). Its
  secret is write-only, given by reference (``env:NAME``, ``file:/path``) or as
  ``stored`` (the value the registry holds, what ``export`` writes), compared and sent
  as a webhook's or a registry endpoint's (``core.ascode_outbound``): on creation, when
  one is added, or with ``secret_rotate: true``.
- ``PreheatPolicy``: a project's policy (``/api/v1/projects/{p}/preheat/policies``),
  keyed ``<project>/<name>``; ``spec.instance`` names a ``P2PInstance`` of the file or
  of the registry (instances are created before policies and deleted after them).

Both are checked by the rules the registry applies (``core.preheat.check_name`` and
``check_policy``), so a file the registry would refuse is refused before any change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.ascode_base import DocumentBase, ProjectName, Strict
from core.ascode_outbound import StoredOrRef, refuse_bad_rotate, secret_state
from core.errors import InvalidInputError
from core.preheat import (
    NAME_PATTERN,
    AuthMode,
    PolicyInput,
    Scope,
    TriggerKind,
    Vendor,
    check_name,
    check_policy,
    parse_auth_mode,
)

#: A name as the registry checks it (the pattern is published in the schema too).
_NAME_FIELD = Field(
    description="1-63 lower-case letters, digits, '.', '_' and '-'.",
    json_schema_extra={"pattern": NAME_PATTERN},
)


def _registry_name(name: str) -> str:
    """``name`` as the registry accepts it (``core.preheat.check_name``)."""
    try:
        return check_name(name)
    except InvalidInputError as exc:
        raise ValueError(str(exc).removeprefix("name: ")) from exc


# --- P2PInstance ---------------------------------------------------------------------


class InstanceMeta(Strict):
    name: str = _NAME_FIELD

    _name = field_validator("name")(_registry_name)


class InstanceSpec(Strict):
    vendor: Vendor
    endpoint: str = Field(
        min_length=1, description="The provider's base URL (checked by the outbound policy)."
    )
    description: str = ""
    auth_mode: AuthMode = AuthMode.NONE
    username: str = Field(default="", description="For auth_mode 'basic'.")
    secret: StoredOrRef | None = Field(
        default=None,
        description="Password, token or 'Name: value' header, by reference; 'stored' keeps "
        "the registry's; never exported.",
    )
    secret_rotate: bool = Field(
        default=False, description="Send the referenced secret again on every apply."
    )
    enabled: bool = True
    default: bool = Field(
        default=False,
        description="The instance policies use when they name none (at most one is; "
        "a file may mark one).",
    )
    insecure: bool = Field(
        default=False, description="Do not verify the provider's TLS certificate."
    )

    _auth_mode = field_validator("auth_mode", mode="before")(parse_auth_mode)

    @model_validator(mode="after")
    def _consistent(self) -> InstanceSpec:
        refuse_bad_rotate(self.secret, self.secret_rotate, "secret")
        if self.auth_mode is AuthMode.NONE and self.secret is not None:
            raise ValueError("auth_mode 'none' takes no secret")
        if self.auth_mode is not AuthMode.NONE and self.secret is None:
            raise ValueError(f"auth_mode {self.auth_mode.value!r} needs a secret")
        if self.auth_mode is AuthMode.BASIC and not self.username:
            raise ValueError("auth_mode 'basic' needs a username")
        return self


class P2PInstanceDoc(DocumentBase):
    """A P2P provider instance (system administrators); deleted only when no policy uses it."""

    kind: Literal["P2PInstance"]
    metadata: InstanceMeta
    spec: InstanceSpec

    def key(self) -> str:
        return self.metadata.name

    def canonical_spec(self) -> dict[str, Any]:
        spec = self.spec.model_dump(mode="json", exclude={"secret_rotate"})
        spec["endpoint"] = self.spec.endpoint.rstrip("/")  # as the registry stores it
        spec["secret"] = secret_state(self.spec.secret, self.spec.secret_rotate)
        return spec


# --- PreheatPolicy -------------------------------------------------------------------


class PreheatMeta(Strict):
    project: ProjectName
    name: str = _NAME_FIELD

    _name = field_validator("name")(_registry_name)


#: Stands for the policy's name while its spec is checked (the name is the metadata's).
_CHECKED_NAME = "policy"


class PreheatSpec(Strict):
    instance: str = Field(min_length=1, description="The P2PInstance's name.")
    description: str = ""
    repositories: str = Field(default="**", description="Glob on repositories in the project.")
    tags: str = Field(default="**", description="Glob on tags.")
    signed_only: bool = False
    severity: str | None = Field(
        default=None, description="Leave out images with a finding at or above it."
    )
    trigger: TriggerKind = TriggerKind.MANUAL
    cron: str | None = Field(default=None, description="For, and only for, trigger 'scheduled'.")
    scope: Scope = Scope.SINGLE_SEED_PEER
    cluster_ids: list[int] = Field(
        default_factory=list, description="Dragonfly scheduler clusters (empty: all)."
    )
    enabled: bool = True

    def checked(self, name: str = _CHECKED_NAME) -> PolicyInput:
        """The policy as the registry stores it; ``InvalidInputError`` as it refuses it."""
        return check_policy(
            PolicyInput(
                name=name,
                instance=self.instance,
                description=self.description,
                repositories=self.repositories,
                tags=self.tags,
                signed_only=self.signed_only,
                severity=self.severity,
                trigger=self.trigger,
                cron=self.cron,
                scope=self.scope,
                cluster_ids=tuple(self.cluster_ids),
                enabled=self.enabled,
            )
        )

    @model_validator(mode="after")
    def _registry_accepts(self) -> PreheatSpec:
        try:
            self.checked()
        except InvalidInputError as exc:
            where, message = exc.field, str(exc)
            if where and not message.startswith(where):
                message = f"{where}: {message}"
            raise ValueError(message) from exc
        return self


class PreheatPolicyDoc(DocumentBase):
    """A project's preheat policy (project administrators)."""

    kind: Literal["PreheatPolicy"]
    metadata: PreheatMeta
    spec: PreheatSpec

    def key(self) -> str:
        return f"{self.metadata.project}/{self.metadata.name}"

    def project_ref(self) -> str | None:
        return self.metadata.project

    def canonical_spec(self) -> dict[str, Any]:
        checked = self.spec.checked(self.metadata.name)
        spec = self.spec.model_dump(mode="json")
        spec["cron"] = checked.cron
        spec["cluster_ids"] = list(checked.cluster_ids)
        return spec
