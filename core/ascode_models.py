"""Administration as code: the documents of a Moorage configuration file.

A file is a stream of documents (YAML ``---`` separated, or JSON: one document or a list
of them). Each document names its ``apiVersion`` (``moorage.io/v1``) and ``kind``; its
``metadata`` holds the natural key (names, never database ids) and its ``spec`` the
desired settings. Kinds today: ``Project``, ``User``, ``Robot``, ``Member``, ``Quota``,
``RetentionPolicy``, ``ImmutabilityPolicy``, ``TrustedIssuer`` and, in
``core.ascode_outbound``, ``Webhook``, ``RegistryEndpoint`` and ``ProxyBinding``, in
``core.ascode_replication``, ``ReplicationPolicy``, in ``core.ascode_preheat``,
``P2PInstance`` and ``PreheatPolicy``, in ``core.ascode_promotion``, ``PromotionRule``,
in ``core.ascode_security``, ``TrustPolicy``, ``ScanPolicy`` and ``CveAllowlist``, and in
``core.ascode_scanners``, ``Scanner`` and ``ProjectScanner``. A later kind is one more
model (with its ``key``, added to ``Document`` and to ``KINDS`` at its place in the
dependency order), its reader in ``cli/apply_state.py`` and its API calls (a
``_<kind>`` method) in ``cli/apply_execute.py``; the plan and the schema need nothing else.

Every model refuses unknown keys, so a typo is an error naming its path, never a
silently ignored setting. Secrets appear only as references (``core.ascode_secrets``).
The published JSON Schema (``schemas/``) is generated from these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from core.ascode_base import (
    DocumentBase,
    InProject,
    Named,
    ProjectName,
    RobotName,
    Strict,
    utc_text,
)
from core.ascode_outbound import EndpointDoc, ProxyDoc, WebhookDoc
from core.ascode_preheat import P2PInstanceDoc, PreheatPolicyDoc
from core.ascode_promotion import PromotionRuleDoc
from core.ascode_replication import ReplicationPolicyDoc
from core.ascode_scanners import ProjectScannerDoc, ScannerDoc
from core.ascode_secrets import SecretRef
from core.ascode_security import CveAllowlistDoc, ScanPolicyDoc, TrustPolicyDoc
from core.policies import ImmutabilityRule
from core.retention import RetentionRule

API_VERSION = "moorage.io/v1"
ROBOT_PREFIX = "robot$"
ROLES = Literal["admin", "maintainer", "developer", "guest", "limited-guest"]
ACTIONS = Literal["pull", "push", "delete", "promote"]

# --- Project -------------------------------------------------------------------------


class ProjectMeta(Strict):
    name: ProjectName


class ProjectSpec(Strict):
    public: bool = False


class ProjectDoc(DocumentBase):
    """A project (tenant). Deleting one (``--prune``) deletes everything in it."""

    kind: Literal["Project"]
    metadata: ProjectMeta
    spec: ProjectSpec = ProjectSpec()

    def key(self) -> str:
        return self.metadata.name


# --- User ----------------------------------------------------------------------------


class UserMeta(Strict):
    name: str = Field(min_length=1, max_length=63)


class UserSpec(Strict):
    email: str | None = Field(default=None, max_length=254)
    full_name: str | None = Field(default=None, max_length=255)
    disabled: bool = False
    password: SecretRef | None = Field(
        default=None,
        description="Used only to create the account; never read back nor exported.",
    )


class UserDoc(DocumentBase):
    """A local account. Users are never pruned."""

    kind: Literal["User"]
    metadata: UserMeta
    spec: UserSpec = UserSpec()

    def key(self) -> str:
        return self.metadata.name

    def canonical_spec(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json", exclude={"password"})


# --- Robot ---------------------------------------------------------------------------


class RobotMeta(Strict):
    name: RobotName
    project: ProjectName | None = Field(
        default=None, description="The project of a project robot; absent for a system robot."
    )


class Permission(Strict):
    repository: str = Field(
        min_length=1,
        max_length=255,
        description="Repository pattern; inside the project for a project robot.",
    )
    actions: list[ACTIONS] = Field(min_length=1, max_length=4)


class RobotSpec(Strict):
    permissions: list[Permission] = Field(min_length=1, max_length=100)
    expires_at: datetime | None = None
    disabled: bool = False


class RobotDoc(DocumentBase):
    """A robot account; its secret is generated on creation and printed once."""

    kind: Literal["Robot"]
    metadata: RobotMeta
    spec: RobotSpec

    def key(self) -> str:
        return robot_full_name(self.metadata.name, self.metadata.project)

    def project_ref(self) -> str | None:
        return self.metadata.project

    def canonical_spec(self) -> dict[str, Any]:
        permissions = sorted(
            (
                {"repository": p.repository, "actions": sorted(set(p.actions))}
                for p in self.spec.permissions
            ),
            key=lambda p: str(p["repository"]),
        )
        expires = self.spec.expires_at
        return {
            "permissions": permissions,
            "expires_at": utc_text(expires),
            "disabled": self.spec.disabled,
        }


def robot_full_name(name: str, project: str | None) -> str:
    """``robot$<project>+<name>`` for a project robot, ``robot$<name>`` for a system one."""
    return f"{ROBOT_PREFIX}{project}+{name}" if project else f"{ROBOT_PREFIX}{name}"


# --- Member --------------------------------------------------------------------------


class MemberMeta(InProject):
    user: str | None = Field(default=None, min_length=1, max_length=255)
    group: str | None = Field(default=None, min_length=1, max_length=255)
    robot: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="The robot's full name: robot$<project>+<name> or robot$<name>.",
    )

    @model_validator(mode="after")
    def _one_identity(self) -> MemberMeta:
        if sum(v is not None for v in (self.user, self.group, self.robot)) != 1:
            raise ValueError("name exactly one of user, group or robot")
        return self

    def identity(self) -> tuple[str, str]:
        """``(kind, name)`` of the member."""
        for kind in ("user", "group", "robot"):
            value = getattr(self, kind)
            if value is not None:
                return kind, str(value)
        raise AssertionError("validated above")  # pragma: no cover


class MemberSpec(Strict):
    role: ROLES


class MemberDoc(DocumentBase):
    """A user, group or robot holding a role in a project."""

    kind: Literal["Member"]
    metadata: MemberMeta
    spec: MemberSpec

    def key(self) -> str:
        kind, name = self.metadata.identity()
        return f"{self.metadata.project}/{kind}:{name}"

    def project_ref(self) -> str | None:
        return self.metadata.project


# --- Per-project policies ------------------------------------------------------------


class QuotaSpec(Strict):
    bytes: int | None = Field(default=None, ge=0, description="null: unlimited")
    artifacts: int | None = Field(default=None, ge=0, description="null: unlimited")


class QuotaDoc(DocumentBase):
    """A project's quota; without the document (and with ``--prune``) it is unlimited."""

    kind: Literal["Quota"]
    metadata: InProject
    spec: QuotaSpec = QuotaSpec()

    def key(self) -> str:
        return self.metadata.project

    def project_ref(self) -> str | None:
        return self.metadata.project


class RetentionSpec(Strict):
    rules: list[RetentionRule] = Field(default_factory=list, max_length=15)


class RetentionDoc(DocumentBase):
    """A project's retention rules (``core.retention``)."""

    kind: Literal["RetentionPolicy"]
    metadata: InProject
    spec: RetentionSpec = RetentionSpec()

    def key(self) -> str:
        return self.metadata.project

    def project_ref(self) -> str | None:
        return self.metadata.project


class ImmutabilitySpec(Strict):
    rules: list[ImmutabilityRule] = Field(default_factory=list, max_length=15)


class ImmutabilityDoc(DocumentBase):
    """A project's tag immutability rules (``core.policies``)."""

    kind: Literal["ImmutabilityPolicy"]
    metadata: InProject
    spec: ImmutabilitySpec = ImmutabilitySpec()

    def key(self) -> str:
        return self.metadata.project

    def project_ref(self) -> str | None:
        return self.metadata.project


# --- Trusted issuer ------------------------------------------------------------------


class IssuerSpec(Strict):
    jwks_url: str | None = Field(default=None, max_length=1024)
    discovery_url: str | None = Field(default=None, max_length=1024)
    audience: str = Field(min_length=1, max_length=255)
    subject_claim: str = Field(default="sub", min_length=1, max_length=64)
    subject_pattern: str = Field(default="*", min_length=1, max_length=255)
    permissions: list[Permission] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_key_source(self) -> IssuerSpec:
        if not self.jwks_url and not self.discovery_url:
            raise ValueError("jwks_url or discovery_url is required")
        return self


class IssuerDoc(DocumentBase):
    """An OIDC issuer whose tokens are accepted; ``metadata.name`` is its issuer URL."""

    kind: Literal["TrustedIssuer"]
    metadata: Named
    spec: IssuerSpec

    def key(self) -> str:
        return self.metadata.name

    def canonical_spec(self) -> dict[str, Any]:
        spec = self.spec.model_dump(mode="json")
        spec["permissions"] = sorted(
            (
                {"repository": p.repository, "actions": sorted(set(p.actions))}
                for p in self.spec.permissions
            ),
            key=lambda p: str(p["repository"]),
        )
        return spec


Document = Annotated[
    ProjectDoc
    | UserDoc
    | RobotDoc
    | MemberDoc
    | QuotaDoc
    | RetentionDoc
    | ImmutabilityDoc
    | IssuerDoc
    | WebhookDoc
    | EndpointDoc
    | ProxyDoc
    | ReplicationPolicyDoc
    | P2PInstanceDoc
    | PreheatPolicyDoc
    | PromotionRuleDoc
    | TrustPolicyDoc
    | ScanPolicyDoc
    | CveAllowlistDoc
    | ScannerDoc
    | ProjectScannerDoc,
    Field(discriminator="kind"),
]

#: Kinds in the order they are created (dependencies first); deletions run in reverse.
#: (Endpoints come before the projects that proxy them; with ``--prune`` a binding is reset
#: with the other per-project documents, before the endpoint it names is deleted. P2P
#: instances and scanners come before projects, and so are deleted after the policies and
#: selections that name them.)
KINDS: tuple[str, ...] = (
    "User",
    "RegistryEndpoint",
    "P2PInstance",
    "Scanner",
    "Project",
    "Robot",
    "Member",
    "Quota",
    "RetentionPolicy",
    "ImmutabilityPolicy",
    "TrustPolicy",
    "ScanPolicy",
    "CveAllowlist",
    "ProxyBinding",
    "ProjectScanner",
    "Webhook",
    "ReplicationPolicy",
    "PreheatPolicy",
    "PromotionRule",
    "TrustedIssuer",
)
#: Kinds of one per project (or one system-wide ``CveAllowlist``), whose absence means the
#: default (reset by ``--prune``). A ``TrustPolicy`` is one too, but absent it is deleted.
PROJECT_SINGLETONS = frozenset(
    {
        "Quota",
        "RetentionPolicy",
        "ImmutabilityPolicy",
        "ScanPolicy",
        "CveAllowlist",
        "ProxyBinding",
        "ProjectScanner",
    }
)

DOCUMENT: TypeAdapter[Document] = TypeAdapter(Document)
FILE: TypeAdapter[Document | list[Document]] = TypeAdapter(Document | list[Document])


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a configuration file (one document or a list)."""
    schema = FILE.json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://moorage.io/schemas/moorage-config.v1.schema.json"
    schema["title"] = "Moorage configuration (apiVersion moorage.io/v1)"
    return schema
