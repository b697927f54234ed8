"""Administration as code: what every document kind shares (strict models, natural keys)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.names import PROJECT_MAX, PROJECT_NAME_PATTERN

ProjectName = Annotated[
    str, Field(min_length=1, max_length=PROJECT_MAX, pattern=PROJECT_NAME_PATTERN)
]
RobotName = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DocumentBase(Strict):
    api_version: Literal["moorage.io/v1"] = Field(alias="apiVersion")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def key(self) -> str:
        """The natural key, unique among the documents of one kind."""
        raise NotImplementedError

    def project_ref(self) -> str | None:
        """The project this document lives in, if any."""
        return None

    def canonical_spec(self) -> dict[str, Any]:
        """The settings compared by plan (secrets, which are write-only, left out)."""
        spec: BaseModel = getattr(self, "spec")  # noqa: B009 - every kind has a spec
        return spec.model_dump(mode="json")


class Named(Strict):
    name: str = Field(min_length=1, max_length=512)


class InProject(Strict):
    project: ProjectName


def utc_text(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC; a moment without a zone (as SQLite answers) is taken as UTC."""
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat()
