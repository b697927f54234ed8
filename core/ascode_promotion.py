"""Administration as code: the ``PromotionRule`` kind (``core.promotion_rules``).

A source project's rule (``/api/v1/projects/{p}/promotion-rules``), keyed
``<project>/<name>``; its spec holds the fields the API takes. ``spec.target_project``
names a project of the file or of the registry (plan refuses any other). Checked by the
rules the registry applies (``core.promotion_rules.check_rule``), so a rule the registry
would refuse is refused before any change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.ascode_base import DocumentBase, ProjectName, Strict
from core.errors import InvalidInputError
from core.promotion import DEFAULT_APPROVAL_TIMEOUT, Gates
from core.promotion_rules import NAME_PATTERN, RuleInput, check_name, check_rule

PusherKind = Literal["user", "oidc_user", "robot", "issuer"]
Severity = Literal["low", "medium", "high", "critical"]  # core.promotion.SEVERITIES


def _registry_name(name: str) -> str:
    try:
        return check_name(name)
    except InvalidInputError as exc:
        raise ValueError(str(exc).removeprefix("name: ")) from exc


class RuleMeta(Strict):
    project: ProjectName = Field(description="The source project.")
    name: str = Field(
        description="1-63 lower-case letters, digits, '.', '_' and '-'.",
        json_schema_extra={"pattern": NAME_PATTERN},
    )

    _name = field_validator("name")(_registry_name)


class RuleGates(Strict):
    max_severity: Severity | None = Field(
        default=None, description="Refuse a finding at or above it."
    )
    signed: bool = Field(default=False, description="Meet the source project's trust policy.")
    builder: str | None = Field(
        default=None, description="Verified SLSA provenance from this builder id."
    )
    approval: bool = Field(default=False, description="Wait for a manual approval.")
    approval_timeout_seconds: int = Field(default=DEFAULT_APPROVAL_TIMEOUT, ge=1)
    wait_seconds: int = Field(
        default=0, ge=0, description="How long failing gates are evaluated again (0: once)."
    )


class RuleSpec(Strict):
    target_project: ProjectName
    target_repository: str | None = Field(
        default=None, description="Repository path in the target project (absent: the source's)."
    )
    description: str = ""
    repositories: str = Field(default="**", description="Glob on repositories in the project.")
    tags: str = Field(default="**", description="Glob on the pushed tag.")
    pusher: str | None = Field(default=None, description="Glob on who pushed (absent: anyone).")
    pusher_kind: PusherKind | None = None
    gates: RuleGates = RuleGates()
    sign: bool = False
    enabled: bool = True

    def checked(self, name: str = "rule") -> RuleInput:
        """The rule as the registry stores it; ``InvalidInputError`` as it refuses it."""
        return check_rule(
            RuleInput(
                name=name,
                target_project=self.target_project,
                tags=self.tags,
                repositories=self.repositories,
                pusher=self.pusher,
                pusher_kind=self.pusher_kind,
                target_repository=self.target_repository,
                gates=Gates(**self.gates.model_dump()),
                sign=self.sign,
                description=self.description,
                enabled=self.enabled,
            )
        )

    @model_validator(mode="after")
    def _registry_accepts(self) -> RuleSpec:
        try:
            self.checked()
        except InvalidInputError as exc:
            where, message = exc.field, str(exc)
            if where and not message.startswith(where):
                message = f"{where}: {message}"
            raise ValueError(message) from exc
        return self


class PromotionRuleDoc(DocumentBase):
    """A source project's promotion rule (project administrators)."""

    kind: Literal["PromotionRule"]
    metadata: RuleMeta
    spec: RuleSpec

    def key(self) -> str:
        return f"{self.metadata.project}/{self.metadata.name}"

    def project_ref(self) -> str | None:
        return self.metadata.project

    def canonical_spec(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")
