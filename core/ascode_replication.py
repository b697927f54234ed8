"""Administration as code: the ``ReplicationPolicy`` kind (``core.replication``).

A replication policy of this installation (system administrators), keyed by its name;
the spec holds the policy's fields as ``/api/v1/replication/policies`` takes them. Its
endpoint must be a ``RegistryEndpoint`` of the file or of the registry (endpoints are
created before policies and deleted after them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from core.ascode_base import DocumentBase, Strict
from core.replication import ArtifactKind, Direction, TriggerKind


class ReplicationMeta(Strict):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9._-]*$")


class ReplicationSpec(Strict):
    direction: Direction
    endpoint: str = Field(min_length=1, max_length=63)
    description: str = Field(default="", max_length=1024)
    enabled: bool = True
    repositories: str = Field(default="**", min_length=1, max_length=255)
    tags: str = Field(default="**", min_length=1, max_length=255)
    artifact_kind: ArtifactKind = ArtifactKind.ALL
    referrers: bool = True
    flatten: int = Field(default=0, ge=0, le=16)
    prefix: str = Field(default="", max_length=255)
    trigger: TriggerKind = TriggerKind.MANUAL
    cron: str | None = Field(default=None, max_length=128)
    deletions: bool = False
    override: bool = True
    bandwidth_kbps: int = Field(default=0, ge=0)
    concurrency: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _consistent(self) -> ReplicationSpec:
        if (self.trigger is TriggerKind.SCHEDULED) != (self.cron is not None):
            raise ValueError("cron is required for, and only for, trigger 'scheduled'")
        if self.trigger is TriggerKind.EVENT and self.direction is not Direction.PUSH:
            raise ValueError("trigger 'event' needs direction 'push'")
        return self


class ReplicationPolicyDoc(DocumentBase):
    """A replication policy (system administrators)."""

    kind: Literal["ReplicationPolicy"]
    metadata: ReplicationMeta
    spec: ReplicationSpec

    def key(self) -> str:
        return self.metadata.name

    def canonical_spec(self) -> dict[str, Any]:
        spec = self.spec.model_dump(mode="json")
        spec["prefix"] = self.spec.prefix.strip("/")
        if spec["cron"] is not None:
            spec["cron"] = " ".join(str(spec["cron"]).split())
        return spec
