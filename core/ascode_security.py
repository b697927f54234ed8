"""Administration as code: the security policy kinds.

- ``TrustPolicy``: a project's trust policy, its spec the document
  ``/api/v1/projects/{p}/trust/policy`` takes (``core.trust_policy``), checked as the
  registry checks it (keys and certificates load, signers name them) before any change;
  a project without the document has no policy (``--prune`` removes it).
- ``ScanPolicy``: a project's scan settings (``/api/v1/projects/{p}/scan-policy``);
  without the document the defaults hold (scan on push, no pull gate).
- ``CveAllowlist``: the system allowlist (no ``metadata.project``) or a project's; its
  entries are vulnerability ids (compared case-insensitively, as the registry stores
  them upper-cased), each with an optional expiry. Without the document the list is empty.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.ascode_base import DocumentBase, InProject, ProjectName, Strict, utc_text
from core.errors import InvalidInputError
from core.scan_records import (
    ALLOWLIST_COMMENT_MAX,
    ALLOWLIST_MAX,
    VULN_ID_MAX,
    VULN_ID_PATTERN,
)
from core.trust_policy import PolicyDocument, parse_document
from core.vulndb.severity import Severity

#: The key of the system allowlist (no project name can take it).
SYSTEM = "(system)"


class TrustPolicySpec(PolicyDocument):
    """Which signatures and attestations a project's images need to be pulled.

    ``keys`` (cosign public keys, PEM), ``certificates`` (notation trust anchors) and
    ``keyless`` (Sigstore trusted roots: Fulcio CA chain, transparency-log keys, OIDC
    identities) name the signers; ``signatures.required_signers`` of
    ``signatures.signers`` (default: all) must have signed; each of ``attestations`` must
    be met by a verified attestation; ``enforce: false`` records verdicts without
    refusing pulls.
    """

    @model_validator(mode="after")
    def _registry_accepts(self) -> TrustPolicySpec:
        try:
            parse_document(self.model_dump(mode="json"))
        except InvalidInputError as exc:
            where, message = exc.field, str(exc)
            if where and not message.startswith(where):
                message = f"{where}: {message}"  # the field the registry names
            raise ValueError(message) from exc
        return self


class TrustPolicyDoc(DocumentBase):
    """A project's trust policy (``core.trust_policy``)."""

    kind: Literal["TrustPolicy"]
    metadata: InProject
    spec: TrustPolicySpec

    def key(self) -> str:
        return self.metadata.project

    def project_ref(self) -> str | None:
        return self.metadata.project


class ScanPolicySpec(Strict):
    scan_on_push: bool = True
    prevent_severity: Severity | None = Field(
        default=None, description="Refuse pulls of images with a finding at or above it."
    )
    refuse_unscanned: bool = False


class ScanPolicyDoc(DocumentBase):
    """A project's scan settings (``core.scan_reports``)."""

    kind: Literal["ScanPolicy"]
    metadata: InProject
    spec: ScanPolicySpec = ScanPolicySpec()

    def key(self) -> str:
        return self.metadata.project

    def project_ref(self) -> str | None:
        return self.metadata.project


class AllowlistMeta(Strict):
    project: ProjectName | None = Field(
        default=None, description="The project; absent for the system allowlist."
    )


class AllowlistEntry(Strict):
    id: str = Field(min_length=1, max_length=VULN_ID_MAX, pattern=VULN_ID_PATTERN)
    expires_at: datetime | None = None
    comment: str = Field(default="", max_length=ALLOWLIST_COMMENT_MAX)


class AllowlistSpec(Strict):
    items: list[AllowlistEntry] = Field(default_factory=list, max_length=ALLOWLIST_MAX)

    @field_validator("items")
    @classmethod
    def _unique(cls, items: list[AllowlistEntry]) -> list[AllowlistEntry]:
        """Ids are compared as the registry stores them (upper-cased)."""
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            first = seen.setdefault(item.id.upper(), index)
            if first != index:
                raise ValueError(f"items[{index}]: duplicate id {item.id!r} (as items[{first}])")
        return items


class CveAllowlistDoc(DocumentBase):
    """The system CVE allowlist or a project's (``core.scan_reports``)."""

    kind: Literal["CveAllowlist"]
    metadata: AllowlistMeta = AllowlistMeta()
    spec: AllowlistSpec = AllowlistSpec()

    def key(self) -> str:
        return self.metadata.project or SYSTEM

    def project_ref(self) -> str | None:
        return self.metadata.project

    def canonical_spec(self) -> dict[str, Any]:
        items = [
            {"id": i.id.upper(), "expires_at": utc_text(i.expires_at), "comment": i.comment}
            for i in self.spec.items
        ]
        return {"items": sorted(items, key=lambda i: str(i["id"]))}


def security_default(kind: str, key: str) -> Any:
    """The state without a document: default scan settings, an empty allowlist."""
    version = {"apiVersion": "moorage.io/v1", "kind": kind}
    if kind == "ScanPolicy":
        return ScanPolicyDoc.model_validate({**version, "metadata": {"project": key}})
    project = None if key == SYSTEM else key
    return CveAllowlistDoc.model_validate({**version, "metadata": {"project": project}})
